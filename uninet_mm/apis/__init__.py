"""Code shared by the tools (and their tests): work-dir and output guards, checkpoint/model
matching."""
