"""The five competency modules A–E: unit pages, reading progress, instructors' settings."""
