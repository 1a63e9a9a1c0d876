"""`imgcdn` command line: one small function per subcommand, registered in SUBCOMMANDS.

Each `add_<name>_command(subparsers)` adds its parser and sets `run=<function(args) -> int>`.
Config errors print one line `imgcdn: <message>` to stderr and exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import Any

from imgcdn.config import ConfigError, load_config

DEFAULT_CONFIG = "config.yaml"

Subparsers = Any  # argparse's private _SubParsersAction
AddCommand = Callable[[Subparsers], None]


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"config file (default {DEFAULT_CONFIG}; a missing file means all defaults)",
    )


# ---- imgcdn edge ----


def add_edge_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("edge", help="run the edge (/img, /raw, /avatar, /metrics)")
    add_config_argument(parser)
    parser.add_argument("--host", help="listen address (overrides edge.host)")
    parser.add_argument("--port", type=int, help="listen port (overrides edge.port)")
    parser.set_defaults(run=run_edge_command)


def run_edge_command(args: argparse.Namespace) -> int:
    config = load_config(args.config).edge
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if args.port is not None and not 0 <= args.port < 65536:
        raise ConfigError("--port: must be 0..65535")
    config = dataclasses.replace(config, **overrides)
    from edge.server import run_edge  # imported late: prometheus must see the env first

    return run_edge(config)


# ---- imgcdn origin ----


def add_origin_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("origin", help="run the origin API (users, uploads, photos)")
    add_config_argument(parser)
    parser.add_argument("--host", help="listen address (overrides origin.host)")
    parser.add_argument("--port", type=int, help="listen port (overrides origin.port)")
    parser.set_defaults(run=run_origin_command)


def run_origin_command(args: argparse.Namespace) -> int:
    config = load_config(args.config).origin
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if args.port is not None and not 0 < args.port < 65536:
        raise ConfigError("--port: must be 1..65535")
    config = dataclasses.replace(config, **overrides)
    from origin.server import run_origin

    return run_origin(config)


# ---- imgcdn sign ----


def add_sign_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("sign", help="print a signed /img URL")
    parser.add_argument(
        "url", help="an /img URL or path, e.g. http://127.0.0.1:8080/img/a.jpg?w=64"
    )
    parser.add_argument("--key", help="signing key (default: edge.security.signing_key)")
    add_config_argument(parser)
    parser.set_defaults(run=run_sign_command)


def run_sign_command(args: argparse.Namespace) -> int:
    from edge.signing import sign_url

    key = args.key or load_config(args.config).edge.security.signing_key
    if not key:
        raise ConfigError("edge.security.signing_key: not set; pass --key or set it in the config")
    print(sign_url(args.url, key))
    return 0


# ---- imgcdn up ----


def add_up_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "up", help="run origin and edge together on local defaults (./var/), Ctrl-C stops both"
    )
    add_config_argument(parser)
    parser.add_argument(
        "--demo", action="store_true", help="seed a demo user and print avatar URLs to open"
    )
    parser.set_defaults(run=run_up_command)


def run_up_command(args: argparse.Namespace) -> int:
    from imgcdn.up import run_up

    return run_up(args.config, args.demo)


SUBCOMMANDS: list[AddCommand] = [
    add_up_command,
    add_edge_command,
    add_origin_command,
    add_sign_command,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgcdn", description="A caching image-CDN edge and a Gravatar-style avatar origin."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(run(args))
    except ConfigError as err:
        print(f"imgcdn: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
