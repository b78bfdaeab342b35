"""Model repositories (S3, a local directory) and the caching model store that serves them."""
