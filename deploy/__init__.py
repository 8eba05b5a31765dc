"""Deployment: the files for a hospital's setup, and `local.py`, the same topology on loopback (README "Deploying")."""
