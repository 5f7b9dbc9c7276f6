"""The worker side: warm container pools, the job consumer and the executor."""
