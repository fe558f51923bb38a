"""The test LMS (platform side of LTI 1.3) and the helpers that drive launches against the tool."""
