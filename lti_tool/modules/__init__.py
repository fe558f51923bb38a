"""The five competency modules A–E: unit pages, reading progress, and instructors' module settings."""
