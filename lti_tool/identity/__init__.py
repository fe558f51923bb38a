"""Who is who: platform → deployment → course (context) → member (person + roles), and access rules."""
