"""Plain service functions (no ``request``): test creation, assignment, ratings, export."""
