"""gridloop scoring service — 评价考核: performance of departments, areas and people."""
