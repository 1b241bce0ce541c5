"""The host: FastAPI service with the scheduler, the database and the event stream."""
