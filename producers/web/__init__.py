"""The pages for people (#19): accounts, sessions and server-rendered pages beside the API."""
