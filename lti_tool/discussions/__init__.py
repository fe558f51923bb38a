"""Case-scenario discussions: the scenarios trainees discuss in groups, with the prompts, and the
good-practice points instructors bring to the discussion."""
