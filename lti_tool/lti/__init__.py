"""LTI 1.3 protocol: registrations, tool keys, OIDC login, launch validation, dynamic registration.

This package wraps pylti1p3 and imports no domain code; it hands the rest of the tool a
validated, frozen `Launch`.
"""
