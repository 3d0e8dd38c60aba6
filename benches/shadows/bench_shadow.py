#!/usr/bin/env python3
"""Shadow service benchmarks for ggcore (docs/shadows.md).

Run with the test venv's Python (paho-mqtt installed), after `cargo build`:

    $HOME/.cache/ggcore/venv/bin/python benches/shadows/bench_shadow.py [--work DIR] [--n N]

It starts `ggcore run` on a temporary root with one device (`bench-dev`) and
one Python function, and measures:

1. device -> GGShadowService -> device: `get` and `update` round trips, one at
   a time (publish the request, wait for its `/accepted`), p50 / p99;
2. device updates per second with up to WINDOW requests outstanding (each
   request its own packet, as a device writes), every answer counted;
3. the same device's plain round trip through the router (publish on a topic
   routed back to itself), the floor every shadow round trip stands on;
4. from a Python function through `greengrasssdk`: `update_thing_shadow` and
   `get_thing_shadow` one at a time, p50 / p99 and calls per second;
5. peer: the same device figures (1, 2) against what a user could run
   instead: Mosquitto (TLS, same certificates) with a Python paho-mqtt shadow
   responder (tests/fixtures/shadow/cloud_shadow.py, which stores every
   change in a JSON file with fsync, as ggcore syncs each batch).

Prints a Markdown table and writes every number to WORK/results-shadow.json.
Benchmarks report; nothing here asserts a timing.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'functions'))
from bench_functions import Core, arn, client, pct, start_mosquitto, thing  # noqa: E402

WINDOW = 64
THING = 'bench-dev'

FUNCTION_PY = r'''
import json
import time
import greengrasssdk

iot = greengrasssdk.client('iot-data')


def handler(event, context):
    n = event['n']
    upd, get = [], []
    for i in range(n):
        t = time.perf_counter()
        iot.update_thing_shadow(thingName='fn-thing', payload=json.dumps({'state': {'reported': {'i': i}}}))
        upd.append(time.perf_counter() - t)
    for i in range(n):
        t = time.perf_counter()
        iot.get_thing_shadow(thingName='fn-thing')
        get.append(time.perf_counter() - t)
    iot.publish(topic='bench/fn-out', payload=json.dumps({'update': upd, 'get': get}))
'''


class Answers:
    """Collects every message by topic, with its arrival time."""

    def __init__(self, c):
        self.cond = threading.Condition()
        self.by_token = {}
        self.windowed = 0
        self.plain = []
        c.on_message = self.on_message

    def on_message(self, _c, _u, msg):
        now = time.perf_counter()
        with self.cond:
            if msg.topic.startswith('$aws/'):
                token = json.loads(msg.payload).get('clientToken')
                self.by_token[token] = (now, msg.topic)
                if token and token.startswith('w-'):
                    self.windowed += 1
            else:
                self.plain.append((now, msg.payload))
            self.cond.notify_all()

    def wait_token(self, token, timeout=10):
        with self.cond:
            self.cond.wait_for(lambda: token in self.by_token, timeout)
            return self.by_token.get(token)

    def wait_plain(self, n, timeout=10):
        with self.cond:
            self.cond.wait_for(lambda: len(self.plain) >= n, timeout)
            return list(self.plain)


def one_at_a_time(c, answers, op, n):
    """Round trips of `op` (get/update), one at a time: seconds each."""
    times = []
    for i in range(n):
        token = '{}-{}'.format(op, i)
        body = {'clientToken': token}
        if op == 'update':
            body['state'] = {'reported': {'n': i}}
        t = time.perf_counter()
        c.publish('$aws/things/{}/shadow/{}'.format(THING, op), json.dumps(body), qos=0)
        got = answers.wait_token(token)
        if got is None or not got[1].endswith('/accepted'):
            raise RuntimeError('no accepted answer for {}: {}'.format(token, got))
        times.append(got[0] - t)
    return times


def windowed_updates(c, answers, n):
    """Updates with up to WINDOW outstanding: (per second, lost)."""
    sent = 0
    t0 = time.perf_counter()
    while sent < n:
        with answers.cond:
            answers.cond.wait_for(lambda: sent - answers.windowed < WINDOW, 10)
        token = 'w-{}'.format(sent)
        c.publish('$aws/things/{}/shadow/update'.format(THING),
                  json.dumps({'clientToken': token, 'state': {'desired': {'w': sent}}}), qos=0)
        sent += 1
    with answers.cond:
        answers.cond.wait_for(lambda: answers.windowed >= n, 30)
        got = answers.windowed
        last = max(v[0] for k, v in answers.by_token.items() if k.startswith('w-'))
    return round(got / (last - t0)), n - got


def plain_round_trips(c, answers, n):
    times = []
    for i in range(n):
        t = time.perf_counter()
        c.publish('bench/echo', str(i), qos=0)
        got = answers.wait_plain(i + 1)
        times.append(got[i][0] - t)
    return times


def peer(work, core, n, n_window):
    """Figures 1 and 2 against Mosquitto + the Python shadow responder."""
    # Mosquitto leaves Nagle on by default: each answer would wait for a delayed ACK (~40 ms).
    port, broker = start_mosquitto(work, core.root, 'set_tcp_nodelay true\n')
    responder = subprocess.Popen(
        [sys.executable, os.path.join(os.path.dirname(os.path.dirname(HERE)), 'tests', 'fixtures', 'shadow', 'cloud_shadow.py'),
         '--host', '127.0.0.1', '--port', str(port), '--ca', os.path.join(core.certs, 'group-ca.pem'),
         '--cert', os.path.join(core.certs, 'responder.cert.pem'), '--key', os.path.join(core.certs, 'responder.private.key'),
         '--state', os.path.join(work, 'peer-shadows.json')],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    responder.stdout.readline()
    try:
        c = client(core.certs, THING, port)
        answers = Answers(c)
        c.loop_start()
        c.subscribe([('$aws/things/{}/shadow/+/accepted'.format(THING), 0),
                     ('$aws/things/{}/shadow/+/rejected'.format(THING), 0)])
        time.sleep(1)
        one_at_a_time(c, answers, 'update', 50)
        out = {'device_update': us(one_at_a_time(c, answers, 'update', n)),
               'device_get': us(one_at_a_time(c, answers, 'get', n))}
        rate, lost = windowed_updates(c, answers, n_window)
        out['device_updates_windowed'] = {'n': n_window, 'per_s': rate, 'lost': lost}
        c.loop_stop()
        c.disconnect()
        return out
    finally:
        responder.kill()
        broker.kill()


def us(values):
    return {'p50_us': round(pct(values, 0.5) * 1e6), 'p99_us': round(pct(values, 0.99) * 1e6)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--work', help='keep everything here (default: a temporary directory)')
    ap.add_argument('--n', type=int, default=2000, help='round trips per figure')
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix='ggcore-bench-shadow-')
    os.makedirs(work, exist_ok=True)
    dev = thing(THING)
    subs = [(dev, '$aws/things/{}/shadow/+'.format(THING), 'GGShadowService'),
            ('GGShadowService', '$aws/things/{}/shadow/#'.format(THING), dev),
            (dev, 'bench/echo', dev),
            (dev, 'bench/fn-in', arn('shadower')),
            (arn('shadower'), 'bench/fn-out', dev)]
    core = Core(work, {'shadower': (FUNCTION_PY, {'Timeout': 300})}, subs, [THING, 'responder'])
    report = {'n': args.n, 'window': WINDOW}
    try:
        c = client(core.certs, THING, core.port)
        answers = Answers(c)
        c.loop_start()
        c.subscribe([('$aws/things/{}/shadow/+/accepted'.format(THING), 0),
                     ('$aws/things/{}/shadow/+/rejected'.format(THING), 0), ('bench/echo', 0), ('bench/fn-out', 1)])
        time.sleep(1)
        one_at_a_time(c, answers, 'update', 50)  # warm-up
        report['device_update'] = us(one_at_a_time(c, answers, 'update', args.n))
        report['device_get'] = us(one_at_a_time(c, answers, 'get', args.n))
        report['plain_round_trip'] = us(plain_round_trips(c, answers, args.n))
        n_window = args.n * 10
        rate, lost = windowed_updates(c, answers, n_window)
        report['device_updates_windowed'] = {'n': n_window, 'per_s': rate, 'lost': lost}
        before = len(answers.plain)
        c.publish('bench/fn-in', json.dumps({'n': args.n}), qos=1)
        got = answers.wait_plain(before + 1, timeout=300)
        fn = json.loads(got[before][1])
        report['function_update'] = dict(us(fn['update']), per_s=round(len(fn['update']) / sum(fn['update'])))
        report['function_get'] = dict(us(fn['get']), per_s=round(len(fn['get']) / sum(fn['get'])))
        report['service_status'] = core.status()['services']['GGShadowService']
        c.loop_stop()
        c.disconnect()
        report['peer'] = peer(work, core, args.n, n_window)
    finally:
        core.stop()
    path = os.path.join(work, 'results-shadow.json')
    with open(path, 'w') as f:
        json.dump(report, f, indent=1)
    r = report
    p = r['peer']

    def vs(key):
        a, b = r[key], p[key]
        return '{} / {} vs {} / {} µs ({:.2f}× at p50)'.format(a['p50_us'], a['p99_us'], b['p50_us'], b['p99_us'],
                                                             b['p50_us'] / a['p50_us'])
    rows = [
        ('device `update` round trip, one at a time, p50 / p99: ggcore vs Mosquitto + Python responder (peer ÷ ggcore)',
         vs('device_update')),
        ('device `get` round trip, one at a time, p50 / p99: ggcore vs peer', vs('device_get')),
        ('floor: the same device\'s plain publish routed back to it, p50 / p99',
         '{p50_us} / {p99_us} µs'.format(**r['plain_round_trip'])),
        ('device updates/s, up to {} outstanding, {:,} updates: ggcore vs peer; lost'.format(WINDOW, n_window),
         '{:,} vs {:,} ({:.2f}×); {} vs {}'.format(
             r['device_updates_windowed']['per_s'], p['device_updates_windowed']['per_s'],
             r['device_updates_windowed']['per_s'] / p['device_updates_windowed']['per_s'],
             r['device_updates_windowed']['lost'], p['device_updates_windowed']['lost'])),
        ('function `update_thing_shadow` (greengrasssdk), p50 / p99; calls/s',
         '{p50_us} / {p99_us} µs; {per_s:,}'.format(**r['function_update'])),
        ('function `get_thing_shadow`, p50 / p99; calls/s', '{p50_us} / {p99_us} µs; {per_s:,}'.format(**r['function_get'])),
        ('synced batches written (`commits`) for {:,} accepted requests'.format(r['service_status']['accepted']),
         '{:,}'.format(r['service_status']['commits'])),
    ]
    print('| figure | value |\n|---|---:|')
    for k, v in rows:
        print('| {} | {} |'.format(k, v))
    print(path)


if __name__ == '__main__':
    main()
