"""The `hemadose` subcommands, one module each; bot/cli.py parses the arguments and calls them."""
