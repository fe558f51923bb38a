"""What an LMS activity shows: the registry of linkable items, the deep-linking picker, and the
placement (item + instructor options) each resource link is bound to."""
