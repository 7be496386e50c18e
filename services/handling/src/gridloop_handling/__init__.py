"""gridloop handling service — 处置反馈: the department inbox."""
