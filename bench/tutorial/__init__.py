"""The tutorial's API, as its users wrote it: FastAPI + async SQLAlchemy, served by uvicorn.

It is the stack apiclub replaces, kept only to be measured against (`uvicorn
bench.tutorial.main:app`); it follows the same contract as apiclub (DESIGN.md).
"""
