"""The tracker's database: SQLAlchemy 2 models, Alembic migrations, the audit chain."""
