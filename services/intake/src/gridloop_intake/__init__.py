"""gridloop intake service — 发现上报: reports from every channel become cases."""
