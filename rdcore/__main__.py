"""``python -m rdcore``: the rdcore command line."""

from rdcore.cli import app

if __name__ == "__main__":
    app(prog_name="rdcore")
