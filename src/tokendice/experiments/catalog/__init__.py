"""What is here to work with: the stored runs, and the models that can run without a download."""
