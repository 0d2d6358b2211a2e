"""Views of results: terminal (rich), HTML notebook views, progress bars. Views draw what a
result holds; they never compute it."""
