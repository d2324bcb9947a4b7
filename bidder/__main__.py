"""`python3 -m bidder ...`: the `bidder` command, for machines where the script is not on PATH."""

from bidder.cli import main

if __name__ == "__main__":
    main(prog_name="bidder")
