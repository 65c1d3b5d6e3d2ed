"""What sealing applicants costs on the submit path: the gateway with and without applicants,
beside raw nats-py JetStream publishing, same machine, same run.

    .venv/bin/python -m bench.personal_data [--events 5000]

Every event is a new dossier's `dossier.received`. With an applicant the gateway also makes the
dossier's key (one more JetStream write, to ONESTOP_KEYS, wrapped under the KEK), seals the
applicant (AES-256-GCM and an HMAC) and stores the larger sealed form. The same payloads
without the applicant are the baseline; raw publishing says what the broker alone can do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile

import msgspec
import nats

from bench.common import cpu_seconds, gateway_process, machine, private_server
from bench.submit import answering, events, gateway_submit, raw_publish

APPLICANT = {"name": "Nguyễn Văn Thử Nghiệm", "id_number": "052190000001"}
CASES = (
    ("batches of 100 (4 in flight)", 100, 4),
    ("batches of 1000 (2 in flight)", 1000, 2),
)
HEADER = (
    f"{'case':<32}{'raw ev/s':>10}{'no applicant':>14}{'applicant':>11}"
    f"{'ratio to raw':>14}{'cost':>7}{'gw µs/ev, none':>16}{'gw µs/ev, sealed':>18}"
)


def with_applicant(payloads: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    out = []
    for unit, body in payloads:
        event = msgspec.json.decode(body)
        event["applicant"] = APPLICANT
        out.append((unit, msgspec.json.encode(event)))
    return out


async def main(total: int) -> None:
    print(f"machine: {machine()}")
    print(f"events per case and variant: {total}\n")
    with tempfile.TemporaryDirectory(prefix="lienthong-bench-home-") as home:
        os.environ["LIENTHONG_HOME"] = home  # the gateway's KEK directory goes here
        with (
            private_server() as server,
            gateway_process(server.url, "--roles", "gateway") as gateway,
        ):
            client = await nats.connect(server.url)
            await answering(client)
            print(HEADER)
            for label, batch, in_flight in CASES:
                raw = await raw_publish(client, events(total))
                spent = cpu_seconds(gateway.pid)
                plain = await gateway_submit(client, events(total), batch, in_flight)
                plain_cpu = cpu_seconds(gateway.pid) - spent
                spent = cpu_seconds(gateway.pid)
                sealed = await gateway_submit(
                    client, with_applicant(events(total)), batch, in_flight
                )
                sealed_cpu = cpu_seconds(gateway.pid) - spent
                print(
                    f"{label:<32}{raw:>10,.0f}{plain:>14,.0f}{sealed:>11,.0f}"
                    f"{f'{plain / raw:.2f} / {sealed / raw:.2f}':>14}"
                    f"{f'{1 - sealed / plain:.0%}':>7}"
                    f"{plain_cpu * 1e6 / total:>16,.0f}{sealed_cpu * 1e6 / total:>18,.0f}"
                )
            await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    asyncio.run(main(parser.parse_args().events))
