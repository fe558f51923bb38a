"""Where a launch lands: the trainee's course home and the instructors' course overview."""
