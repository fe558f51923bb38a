"""A demo LMS for newcomers without one: served at /demo on loopback by `make run`, never in
production. It is a small LTI 1.3 platform that frames the tool from another site (`localhost`
against the tool's `127.0.0.1`), as a real LMS does."""
