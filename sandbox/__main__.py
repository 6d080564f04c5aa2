"""`python -m sandbox --port N`: run the local Samsar stand-in until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from sandbox.app import SandboxConfig, serve


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0 = random)")
    parser.add_argument("--api-key", default=SandboxConfig.api_key, help="accepted Bearer key")
    parser.add_argument("--start-credits", type=int, default=SandboxConfig.start_credits)
    parser.add_argument("--text-cost", type=int, default=SandboxConfig.text_cost)
    parser.add_argument("--image-cost", type=int, default=SandboxConfig.image_cost)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = SandboxConfig(
        api_key=args.api_key,
        start_credits=args.start_credits,
        text_cost=args.text_cost,
        image_cost=args.image_cost,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, config=config))


if __name__ == "__main__":
    main()
