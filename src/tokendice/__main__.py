from tokendice.cli import entry

entry()
