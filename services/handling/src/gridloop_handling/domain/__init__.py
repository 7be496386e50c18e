"""The handling rules without I/O: a department's task on a case, its commands and its inbox."""
