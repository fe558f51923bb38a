"""Who is who: platform → deployment → course (context) → member (person and roles)."""
