"""A toy claims package whose one claim draws its own figure: adding a claim with a figure is one file."""
