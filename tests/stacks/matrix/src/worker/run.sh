work
