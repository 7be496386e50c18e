"""gridloop's development kit: the local servers (NATS, PostgreSQL, SMTP, S3) from pip
packages, the launcher behind `make run`, and the test harness. Not a production
dependency: a service needs none of it."""
