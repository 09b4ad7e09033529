"""``ironroom``: the one command of the project.

ironroom bridge --config FILE [--broker URL] [--key-file FILE] [--data-dir DIR]
ironroom devices rfid --driver rdm6300|m100 --port URL [--seconds N]
ironroom devices badge [--reader NAME] --profile uid|internal-auth [--key-file FILE]
                       [--cipher aes|sm4] [--seconds N]
ironroom sim room [--config FILE] --scenario NAME [--broker URL] [--key-file FILE]
                  [--data-dir DIR] [--seconds N] [--tracker]
ironroom sim card --uid HEX [--key-file FILE] [--cipher aes|sm4] [--port N]
ironroom keys generate FILE
ironroom deploy certs | broker                          (see ironroom/deploy.py)
ironroom demo
ironroom tracker --config FILE [--broker URL] [--db URL]
ironroom ledger init | room | cabinet | person | badge | document | import | show | loans
                | alarms | alarm reset | events          (see tracker/cli.py)
ironroom audit verify | head
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    from simulators.scenarios import SCENARIOS

    p = argparse.ArgumentParser(prog="ironroom", description="IronRoom secure-room controller")
    p.add_argument("--log-level", default=os.environ.get("IRONROOM_LOG", "INFO"))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("bridge", help="run the room controller daemon")
    b.add_argument("--config", required=True, help="room config (TOML)")
    b.add_argument("--broker", help="broker URL, e.g. mqtts://broker:8883 (overrides the config)")
    b.add_argument("--key-file", help="controller key, 64 hex digits (overrides the config)")
    b.add_argument("--data-dir", help="outbox and state folder (overrides the config)")

    d = sub.add_parser("devices", help="installer tools: talk to one reader").add_subparsers(
        dest="device", required=True, metavar="DEVICE"
    )
    r = d.add_parser("rfid", help="print tags a serial RFID reader sees, one JSON line each")
    r.add_argument("--driver", required=True, choices=("rdm6300", "m100"))
    r.add_argument("--port", required=True, help="/dev/ttyUSB0, a pty, or socket://host:port")
    r.add_argument("--seconds", type=_positive)
    bd = d.add_parser("badge", help="print badges presented on a PC/SC reader, one JSON line each")
    bd.add_argument("--reader", help="PC/SC reader name (default: every reader)")
    bd.add_argument("--profile", required=True, choices=("uid", "internal-auth"))
    bd.add_argument("--key-file", help="badge master key in hex (internal-auth)")
    bd.add_argument("--cipher", default="aes", choices=("aes", "sm4"))
    bd.add_argument("--seconds", type=_positive)

    s = sub.add_parser("sim", help="simulated hardware").add_subparsers(
        dest="sim", required=True, metavar="SIM"
    )
    sr = s.add_parser("room", help="run the real bridge on the simulated room")
    sr.add_argument("--config", help="room config (default: the built-in example room)")
    sr.add_argument("--scenario", required=True, help=", ".join(SCENARIOS))
    sr.add_argument("--broker", help="broker URL (default: the config's)")
    sr.add_argument("--key-file", help="controller key (default: created in the data dir)")
    sr.add_argument("--data-dir", default=".ironroom-sim", help="default: ./.ironroom-sim")
    sr.add_argument("--seconds", type=_positive, help="stop after N seconds (default: never)")
    sr.add_argument("--speed", type=_positive, default=1.0, help="clock speed between steps")
    sr.add_argument("--no-badges", action="store_true", help="run without pcscd and badges")
    sr.add_argument(
        "--tracker",
        action="store_true",
        help="a real tracker answers badges: the scenario sends no cabinet.unlock of its own",
    )
    sc = s.add_parser("card", help="put a virtual badge on pcscd's vpcd reader")
    sc.add_argument("--uid", required=True)
    sc.add_argument("--key-file", help="badge master key in hex (internal-auth badge)")
    sc.add_argument("--cipher", default="aes", choices=("aes", "sm4"))
    sc.add_argument("--port", type=int, default=35963, help="vpcd port: 35963 or 35964")
    sc.add_argument("--seconds", type=_positive)

    k = sub.add_parser("keys", help="key files").add_subparsers(
        dest="keys", required=True, metavar="ACTION"
    )
    kg = k.add_parser("generate", help="write a new 32-byte key in hex (mode 0600)")
    kg.add_argument("file")
    kg.add_argument("--bytes", type=int, default=32, choices=(16, 32))

    dm = sub.add_parser(
        "demo", help="the whole of IronRoom live: broker, simulated room, tracker, console"
    )
    dm.add_argument("--port", type=int, default=8000, help="the console's port (default 8000)")
    dm.add_argument("--broker", help="a broker URL (default: an embedded amqtt on loopback)")
    dm.add_argument("--data-dir", default=".ironroom-demo")
    dm.add_argument("--scenario", default="day", help=f"{', '.join(SCENARIOS)} (default: day)")
    dm.add_argument("--seconds", type=_positive, help="stop cleanly after N seconds")
    dm.add_argument("--live", action="store_true", help="also print every event on the wire")
    dm.add_argument("--no-badges", action="store_true", help="run without pcscd and badges")

    from tracker.cli import add_parsers

    add_parsers(sub)  # tracker, ledger, audit
    from ironroom.deploy import add_parsers as add_deploy_parsers

    add_deploy_parsers(sub)  # deploy certs, deploy broker
    return p


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def cmd_bridge(args: argparse.Namespace) -> int:
    from firmware_bridge.config import load_config
    from firmware_bridge.daemon import Bridge

    cfg = load_config(args.config).with_overrides(
        broker=args.broker, key_file=args.key_file, data_dir=args.data_dir
    )
    cfg.check_files()
    stop = _stop_on_signals()
    bridge = Bridge(cfg)
    try:
        bridge.start()
        bridge.run(stop)
    finally:
        bridge.close()
    return 0


def cmd_sim_room(args: argparse.Namespace) -> int:
    from firmware_bridge.config import check_broker_url
    from simulators.room import load_sim_config
    from simulators.scenarios import SCENARIOS, play

    scenario = SCENARIOS.get(args.scenario)
    if scenario is None:
        print(
            f"ironroom: unknown scenario {args.scenario!r}; have {sorted(SCENARIOS)}",
            file=sys.stderr,
        )
        return 2
    if args.broker:
        check_broker_url(args.broker, "--broker")
    cfg = load_sim_config(args.config, args.data_dir).with_overrides(
        broker=args.broker, key_file=args.key_file
    )
    runner = play(
        cfg,
        scenario,
        stop=_stop_on_signals(),
        seconds=args.seconds,
        speed=args.speed,
        badges=not args.no_badges,
        tracker=args.tracker,
    )
    return 1 if runner.failed else 0


def cmd_sim_card(args: argparse.Namespace) -> int:
    from simulators.vcard import run_card

    return run_card(args.uid, args.key_file, args.cipher, args.port, args.seconds)


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from simulators.room import write_key

    path = Path(args.file)
    try:
        write_key(path, args.bytes)
    except FileExistsError:
        print(f"ironroom: {path} exists; refusing to overwrite a key", file=sys.stderr)
        return 2
    print(f"wrote a new {args.bytes}-byte key to {path} (mode 0600)", file=sys.stderr)
    return 0


def cmd_devices_rfid(args: argparse.Namespace) -> int:
    from devices.rfid.cli import run

    return run(args.driver, args.port, args.seconds, sys.stdout)


def cmd_devices_badge(args: argparse.Namespace) -> int:
    from devices.badge.cli import run

    return run(args.reader, args.profile, args.key_file, args.cipher, args.seconds, sys.stdout)


def cmd_demo(args: argparse.Namespace) -> int:
    from simulators.demo import run_demo
    from tracker.config import TrackerConfigError, check_broker_url

    if args.broker is not None:
        try:
            check_broker_url(args.broker, "--broker")
        except TrackerConfigError as exc:
            print(f"ironroom: {exc}", file=sys.stderr)
            return 2
    return run_demo(
        port=args.port,
        broker=args.broker,
        data_dir=Path(args.data_dir),
        scenario=args.scenario,
        seconds=args.seconds,
        live=args.live,
        badges=not args.no_badges,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from firmware_bridge.config import ConfigError
    from firmware_bridge.errors import BridgeError

    handlers = {
        ("bridge", None): cmd_bridge,
        ("devices", "rfid"): cmd_devices_rfid,
        ("devices", "badge"): cmd_devices_badge,
        ("sim", "room"): cmd_sim_room,
        ("sim", "card"): cmd_sim_card,
        ("keys", "generate"): cmd_keys_generate,
        ("demo", None): cmd_demo,
    }
    if args.command == "deploy":
        from ironroom.deploy import run as run_deploy

        return run_deploy(args)
    if getattr(args, "run", None) is not None:  # tracker, ledger and audit commands
        from tracker.cli import run

        return run(args)
    sub = getattr(args, "device", None) or getattr(args, "sim", None) or getattr(args, "keys", None)
    try:
        return handlers[(args.command, sub)](args)
    except BridgeError as exc:  # the root of the bridge's errors: one line, exit 2
        kind = "config error: " if isinstance(exc, ConfigError) else ""
        print(f"ironroom: {kind}{exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or port given on the command line
        print(f"ironroom: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
