"""Pure maths shared by cells and trainers."""
