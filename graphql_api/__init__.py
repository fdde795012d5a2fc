"""The GraphQL API: FastAPI + Strawberry, one package per feature."""
