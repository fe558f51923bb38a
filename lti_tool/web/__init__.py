"""The web shell: base templates, error pages, security headers, language, and the session."""
