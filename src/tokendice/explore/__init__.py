"""The explorer: a local web app over tokendice.api.Explorer (click a token, fork, see every branch's exact probability)."""
