#!/usr/bin/env python3
"""Function benchmarks for ggcore, side by side with their peers.

Run with the test venv's Python (paho-mqtt installed), after `cargo build`:

    $HOME/.cache/ggcore/venv/bin/python benches/functions/bench_functions.py [--quick] [--awake]
    $HOME/.cache/ggcore/venv/bin/python benches/functions/bench_functions.py --combine IDLE.json AWAKE.json

It makes a temporary root, starts `ggcore run`, deploys Python functions, and
measures, each against the peer measured in the same run:

1. warm function -> function RequestResponse invoke of a no-op Python function
   (p50/p99, from a driver function) vs a raw pipe round trip between two
   Python processes;
2. device -> Python function -> device relay throughput and latency vs the same
   relay done by a Python paho-mqtt client through Mosquitto (TLS, same certs):
   the source publishes with at most RELAY_WINDOW messages not yet back, the
   sink is its own process;
3. trivial invokes per second with both cores busy (driver threads invoking an
   on-demand no-op function that scales out), and, while that runs, a worker
   killed with SIGKILL. Every call is accounted for: the driver counts the
   calls it issued and the answers it got (success, function error, host
   error); lost = issued - answered, after waiting for the last answers. The
   core's counters for the function (`ggcore status --json`, read before and
   after) are set beside them and must tell the same story;
4. cold start of an on-demand Python instance (first invoke after deploy, minus
   a warm invoke) vs spawning `python3` with the Greengrass SDK imported;
5. idle memory of each kind of process: the core, the zygote, an instance
   (RSS and private memory).

Prints a Markdown table of every figure (one column: this run's mode) and the
idle memory table, and writes every number to WORK/results-functions.json
(kept; the path is printed last). `--combine IDLE.json AWAKE.json` prints the
table of BENCHMARKS.md from two such runs: a column per run (CPUs idle,
`--awake`), the memory table of the first. Benchmarks report; nothing here
asserts a timing.
"""
import argparse
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

HERE = os.path.dirname(os.path.abspath(__file__))
# Most relayed messages outstanding (published, not yet back at the sink).
RELAY_WINDOW = 200
# Cold starts measured besides the first (each on its own on-demand function).
COLD_STARTS = 6
# Timeout of the on-demand no-op of the invokes/s run; a call still unanswered
# this long plus INVOKE_GRACE after the run ended counts as lost (the core
# answers a call that outlives its function's timeout with an error).
NOOP_TIMEOUT_S = 10
INVOKE_GRACE_S = 20
REPO = os.path.dirname(os.path.dirname(HERE))
TARGET = os.environ.get('CARGO_TARGET_DIR', os.path.expanduser('~/.cache/ggcore-target'))
GGCORE = os.environ.get('GGCORE_BIN', os.path.join(TARGET, 'debug', 'ggcore'))
SDK = os.path.join(REPO, 'sdk-python')
REGION, ACCOUNT = 'us-east-1', '000000000000'


def arn(name):
    return 'arn:aws:lambda:{}:{}:function:{}:1'.format(REGION, ACCOUNT, name)


def thing(name):
    return 'arn:aws:iot:{}:{}:thing/{}'.format(REGION, ACCOUNT, name)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def free_port():
    import socket
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid):
    """(VmRSS, private) in kB of a process."""
    rss = priv = 0
    try:
        with open('/proc/{}/status'.format(pid)) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    rss = int(line.split()[1])
        with open('/proc/{}/smaps_rollup'.format(pid)) as f:
            for line in f:
                if line.startswith(('Private_Clean:', 'Private_Dirty:')):
                    priv += int(line.split()[1])
    except OSError:
        pass
    return rss, priv


# --- functions used by the benchmarks -------------------------------------

NOOP_PY = '''
def handler(event, context):
    return None
'''

RELAY_PY = '''
import greengrasssdk
iot = greengrasssdk.client('iot-data')
def handler(event, context):
    # EncodingType binary: the event is the payload's bytes, relayed as they are.
    iot.publish(topic='bench/out', payload=event)
'''

DRIVER_PY = '''
import base64, json, os, threading, time, greengrasssdk
iot = greengrasssdk.client('iot-data')
lam = greengrasssdk.client('lambda')

def latency(target, n):
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        r = lam.invoke(FunctionName=target, Payload=b'{}')
        lat.append(time.perf_counter() - t)
        assert r['FunctionError'] == '', r
    return lat

def throughput(target, threads, seconds, grace):
    # Each thread counts in its own dict (no lock on the hot path): a call is
    # counted issued before it is made, and by its answer when it returns.
    # Threads still waiting `grace` s after the run ended are left behind
    # (daemon threads); their calls are the lost ones.
    stop = time.time() + seconds
    tallies = []
    def worker(c):
        while time.time() < stop:
            c['issued'] += 1
            try:
                r = lam.invoke(FunctionName=target, Payload=b'{}')
            except Exception as e:
                key = '{}: {}'.format(type(e).__name__, str(e)[:160])
                c['host_errors'][key] = c['host_errors'].get(key, 0) + 1
                continue
            err = r['FunctionError']
            if not err:
                c['ok'] += 1
            elif err == 'Handled':
                c['handled'] += 1
            else:
                c['unhandled'] += 1
    ts = []
    for _ in range(threads):
        c = {'issued': 0, 'ok': 0, 'handled': 0, 'unhandled': 0, 'host_errors': {}}
        tallies.append(c)
        ts.append(threading.Thread(target=worker, args=(c,), daemon=True))
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join(max(0.0, stop + grace - time.time()))
    out = {'seconds': time.time() - t0, 'threads': threads, 'still_waiting_threads': sum(t.is_alive() for t in ts),
           'issued': 0, 'ok': 0, 'handled': 0, 'unhandled': 0, 'host_errors': {}}
    for c in tallies:
        for k in ('issued', 'ok', 'handled', 'unhandled'):
            out[k] += c[k]
        for k, v in list(c['host_errors'].items()):
            out['host_errors'][k] = out['host_errors'].get(k, 0) + v
    out['answered'] = out['ok'] + out['handled'] + out['unhandled'] + sum(out['host_errors'].values())
    out['lost'] = out['issued'] - out['answered']
    return out

def handler(event, context):
    op = event['op']
    if op == 'latency':
        lat = latency(event['target'], event['n'])
        out = {'lat_us': [round(x * 1e6, 1) for x in lat]}
    elif op == 'first':
        t = time.perf_counter()
        r = lam.invoke(FunctionName=event['target'], Payload=b'{}')
        out = {'first_us': round((time.perf_counter() - t) * 1e6, 1), 'error': r['FunctionError']}
    else:
        out = throughput(event['target'], event['threads'], event['seconds'], event['grace'])
    iot.publish(topic='bench/result', payload=json.dumps(out))
'''


class Core:
    """A ggcore run on a temporary root, with devices and a group."""

    def __init__(self, work, functions, subscriptions, devices):
        self.root = os.path.join(work, 'ggcore-root')
        os.makedirs(os.path.join(self.root, 'config'))
        self.port = free_port()
        config = {'runtime': {'allowFunctionsToRunAsRoot': 'yes'},
                  'ggcore': {'mqtt': {'host': '127.0.0.1', 'port': self.port}}}
        with open(os.path.join(self.root, 'config', 'config.json'), 'w') as f:
            json.dump(config, f)
        self.certs = os.path.join(work, 'certs')
        subprocess.run([GGCORE, 'certs', 'init', '--root', self.root], check=True, capture_output=True)
        entries = []
        for d in devices:
            out = subprocess.run([GGCORE, 'certs', 'device', d, '--root', self.root, '--out', self.certs],
                                 check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            entries.append({'Id': d, 'ThingArn': thing(d), 'CertificateArn': out})
        bundle = os.path.join(work, 'bundle')
        fdefs = []
        for name, (code, cfg, *runtime) in functions.items():
            # (code, config) is a Python 3.11 function in fn.py; a third item
            # names another runtime: 'nodejs...' means code in index.js,
            # 'executable' a compiled program (bytes) in fn, 'java...' a jar.
            runtime = runtime[0] if runtime else 'python3.11'
            os.makedirs(os.path.join(bundle, name))
            if runtime == 'executable':
                path = os.path.join(bundle, name, 'fn')
                with open(path, 'wb') as f:
                    f.write(code)
                os.chmod(path, 0o755)
                executable = 'fn'
            elif runtime.startswith('java'):
                # A jar; the config names the handler (Executable).
                with open(os.path.join(bundle, name, 'functions.jar'), 'wb') as f:
                    f.write(code)
                executable = cfg['Executable']
            else:
                module, ext = ('index', '.js') if runtime.startswith('nodejs') else ('fn', '.py')
                with open(os.path.join(bundle, name, module + ext), 'w') as f:
                    f.write(code)
                executable = module + '.handler'
            c = {'Executable': executable, 'Timeout': 120, 'MemorySize': 131072}
            c.update(cfg)
            fdefs.append({'Id': name, 'FunctionArn': arn(name), 'Runtime': runtime, 'Code': name,
                          'FunctionConfiguration': c})
        group = {'GroupId': 'bench',
                 'CoreDefinition': {'Cores': [{'Id': 'core', 'ThingArn': thing('bench-core')}]},
                 'DeviceDefinition': {'Devices': entries},
                 'FunctionDefinition': {'DefaultConfig': {'Execution': {'RunAs': {'Uid': 0, 'Gid': 0}}},
                                        'Functions': fdefs},
                 'SubscriptionDefinition': {'Subscriptions': [
                     {'Id': 's{}'.format(i), 'Source': s, 'Subject': t, 'Target': d}
                     for i, (s, t, d) in enumerate(subscriptions)]}}
        with open(os.path.join(bundle, 'group.json'), 'w') as f:
            json.dump(group, f)
        self.bundle = bundle
        self.log = open(os.path.join(work, 'ggcore.log'), 'w')
        self.proc = subprocess.Popen([GGCORE, 'run', '--root', self.root], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            with open(os.path.join(work, 'ggcore.log')) as f:
                if 'ggcore ready' in f.read():
                    break
            time.sleep(0.05)
        subprocess.run([GGCORE, 'deploy', bundle, '--root', self.root], check=True, capture_output=True)

    def status(self):
        out = subprocess.run([GGCORE, 'status', '--json', '--root', self.root], check=True, capture_output=True, text=True)
        return json.loads(out.stdout)

    def function(self, name):
        for f in self.status()['functions']:
            if f['arn'] == arn(name):
                return f
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()


def client(certs, name, port):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv311)
    c.tls_set(ca_certs=os.path.join(certs, 'group-ca.pem'), certfile=os.path.join(certs, name + '.cert.pem'),
              keyfile=os.path.join(certs, name + '.private.key'), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    c.connect('localhost', port)
    return c


class Results:
    """Waits for messages on a topic."""

    def __init__(self, c, topic):
        self.items = []
        self.cond = threading.Condition()
        c.on_message = self.on_message
        c.subscribe(topic, qos=1)

    def on_message(self, _c, _u, msg):
        with self.cond:
            self.items.append((time.perf_counter(), msg.payload))
            self.cond.notify_all()

    def wait(self, n, timeout):
        with self.cond:
            self.cond.wait_for(lambda: len(self.items) >= n, timeout)
            return list(self.items)


SINK_CODE = '''
import json, os, ssl, sys, time, paho.mqtt.client as mqtt
certs, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id='sink', protocol=mqtt.MQTTv311)
c.tls_set(ca_certs=os.path.join(certs, 'group-ca.pem'), certfile=os.path.join(certs, 'sink.cert.pem'),
          keyfile=os.path.join(certs, 'sink.private.key'), tls_version=ssl.PROTOCOL_TLS_CLIENT)
out = sys.stdout
def on_message(cl, u, msg):
    out.write('%r %d\\n' % (time.perf_counter(), json.loads(msg.payload)['i']))
    out.flush()
def on_subscribe(cl, u, mid, codes, props):
    out.write('ready\\n')
    out.flush()
c.on_message = on_message
c.on_subscribe = on_subscribe
c.connect('localhost', port)
c.subscribe(topic, qos=1)
c.loop_forever()
'''


class SinkProcess:
    """The relay's sink as its own process (one paho client, as a device
    would be), so that the publisher and the sink do not share one GIL; it
    prints the receive time (the same monotonic clock) and index of each
    message. Same interface as Results for relay_run: items of (time, index)."""

    def __init__(self, certs, port, topic):
        self.items = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen([sys.executable, '-c', SINK_CODE, certs, str(port), topic],
                                     stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != 'ready':
            raise RuntimeError('the sink did not subscribe')
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            t, i = line.split()
            with self.cond:
                self.items.append((float(t), int(i)))
                self.cond.notify_all()

    def wait(self, n, timeout):
        with self.cond:
            self.cond.wait_for(lambda: len(self.items) >= n, timeout)
            return list(self.items)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def call_driver(trigger, results, request, timeout=300):
    before = len(results.items)
    trigger.publish('bench/go', json.dumps(request), qos=1)
    items = results.wait(before + 1, timeout)
    if len(items) <= before:
        raise RuntimeError('no answer from the driver for {}'.format(request))
    return json.loads(items[before][1])


def pipe_round_trip(n):
    """Raw round trip between two Python processes over pipes (the peer of 1)."""
    echo = subprocess.Popen([sys.executable, '-c', 'import sys\nr=sys.stdin.buffer; w=sys.stdout.buffer\nwhile True:\n'
                             '    b=r.readline()\n    if not b: break\n    w.write(b); w.flush()'],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        echo.stdin.write(b'{}\n')
        echo.stdin.flush()
        echo.stdout.readline()
        lat.append(time.perf_counter() - t)
    echo.stdin.close()
    echo.wait()
    return lat


def relay_run(pub, results, n, qos, payload, window=RELAY_WINDOW):
    """Publishes n messages, at most `window` of them not yet relayed back (so
    that no queue on the way overflows and the pipeline's own rate is
    measured), and waits for all relayed copies; returns (msgs/s, latencies,
    distinct messages received, duplicates). Lost is n minus the distinct ones."""
    sent = {}
    before = len(results.items)
    t0 = time.perf_counter()
    for i in range(n):
        if i >= window:
            results.wait(before + i - window + 1, 60)
        body = json.dumps({'i': i, 'pad': payload}).encode()
        sent[i] = time.perf_counter()
        pub.publish('bench/in', body, qos=qos)
    items = results.wait(before + n, 60)[before:]
    elapsed = (items[-1][0] - t0) if items else float('inf')
    lat = []
    for t, i in items:
        lat.append(t - sent[i])
    distinct = len({i for _, i in items if i in sent})
    return distinct / elapsed, lat, distinct, len(items) - distinct


class Awake:
    """With --awake: a lowest-priority busy loop on every CPU while latencies
    are measured, so that idle CPUs do not sleep. On a virtual machine an idle
    vCPU halts, and waking it costs tens of microseconds (a pipe round trip
    here: ~55 us idle, ~7 us awake), which would otherwise dominate every
    cross-process figure, ggcore's and the peers' alike."""

    def __init__(self, on):
        self.procs = []
        if on:
            for _ in range(os.cpu_count() or 1):
                self.procs.append(subprocess.Popen(['nice', '-n', '19', sys.executable, '-c', 'while True: pass']))
            time.sleep(0.3)

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs = []


def cold_starts(trigger, results, kinds, count, gap_s):
    """First-invoke times of on-demand functions: `ondemand-KIND` (its warm
    p50 measured after), then `cold-KIND-K` for K < count, kinds alternating,
    each gap_s apart. Returns {kind: report} with the cold start (first
    invoke minus that warm p50) p50 and range."""
    firsts = {k: [] for k in kinds}
    warm = {}
    for kind in kinds:
        r = call_driver(trigger, results, {'op': 'first', 'target': arn('ondemand-' + kind)})
        firsts[kind].append(r['first_us'])
        lat = call_driver(trigger, results, {'op': 'latency', 'target': arn('ondemand-' + kind), 'n': 200})['lat_us']
        warm[kind] = pct(lat, 0.5)
    for k in range(count):
        for kind in kinds:
            time.sleep(gap_s)
            r = call_driver(trigger, results, {'op': 'first', 'target': arn('cold-{}-{}'.format(kind, k))})
            if r['error']:
                raise RuntimeError('cold start of cold-{}-{} failed: {}'.format(kind, k, r))
            firsts[kind].append(r['first_us'])
    out = {}
    for kind in kinds:
        cold = sorted(f - warm[kind] for f in firsts[kind])
        out[kind] = {'n': len(cold), 'first_invoke_p50_us': round(pct(firsts[kind], 0.5), 1), 'warm_invoke_p50_us': warm[kind],
                     'cold_start_p50_us': round(pct(cold, 0.5), 1),
                     'cold_start_min_max_us': [round(cold[0], 1), round(cold[-1], 1)]}
    return out


def relay_stats(n, rate, lat, got, dup):
    """One relay run's figures."""
    return {'msgs_per_s': round(rate), 'received': got, 'lost': n - got, 'duplicates': dup,
            'p50_ms': round(pct(lat, 0.5) * 1e3, 2), 'p99_ms': round(pct(lat, 0.99) * 1e3, 2)}


def relay_comparison(work, core, sources, n, ours, peer, relay_argv=None):
    """QoS 0 and 1 rows: each source device's relay function through ggcore
    (`sources`: KIND -> device name; rows `ggcore_KIND`, received by the
    device `sink` on bench/out), then the peer relay through Mosquitto
    (`PEER`), and the ratio of `ggcore_OURS` to the peer."""
    res = SinkProcess(core.certs, core.port, 'bench/out')
    clients = {kind: client(core.certs, name, core.port) for kind, name in sources.items()}
    for c in clients.values():
        c.loop_start()
    time.sleep(0.5)
    relay = {}
    payload = 'x' * 64
    try:
        for qos in (0, 1):
            row = {'n': n}
            for kind, source in clients.items():
                relay_run(source, res, min(n, 500), qos, payload)  # warm-up
                row['ggcore_' + kind] = relay_stats(n, *relay_run(source, res, n, qos, payload))
            rate, lat, got, dup = mosquitto_relay(work, core.certs, n, qos, payload, relay_argv=relay_argv)
            row[peer] = relay_stats(n, rate, lat, got, dup)
            row['ratio'] = round(rate and row['ggcore_' + ours]['msgs_per_s'] / rate, 2)
            relay['qos{}'.format(qos)] = row
    finally:
        res.stop()
        stop_clients(*clients.values())
    return relay


def start_trigger(core):
    """The `trigger` device, which drives the driver function on bench/go,
    and the results it gets on bench/result."""
    trigger = client(core.certs, 'trigger', core.port)
    results = Results(trigger, 'bench/result')
    trigger.loop_start()
    time.sleep(1.0)
    return trigger, results


def stop_clients(*clients):
    for c in clients:
        c.loop_stop()
        c.disconnect()


def fmt_ms(us):
    return '{:.1f}'.format(us / 1e3)


def fmt_cold(x):
    """A cold_starts() entry as `P50 ms (MIN–MAX)`."""
    return '{} ms ({}–{})'.format(fmt_ms(x['cold_start_p50_us']), fmt_ms(x['cold_start_min_max_us'][0]),
                                  fmt_ms(x['cold_start_min_max_us'][1]))


def fmt_rate(q, ours, peer):
    """A relay_comparison() row as `OURS vs PEER (RATIO×)` msg/s."""
    return '{:,} vs {:,} ({}×)'.format(q['ggcore_' + ours]['msgs_per_s'], q[peer]['msgs_per_s'], q['ratio'])


def fmt_lost(x):
    return '{}{}'.format(x['lost'], ' (+{} dup)'.format(x['duplicates']) if x['duplicates'] else '')


def start_mosquitto(work, root, extra=''):
    """Mosquitto on a free port with the core's server certificate, taking
    clients of the core's device CA (the peers' broker); (port, process)."""
    port = free_port()
    conf = os.path.join(work, 'mosquitto.conf')
    with open(conf, 'w') as f:
        f.write('user root\nlistener {} 127.0.0.1\nrequire_certificate true\ncafile {}\ncertfile {}\nkeyfile {}\n'
                'persistence false\nallow_anonymous true\nmax_queued_messages 100000\nmax_inflight_messages 1000\n'.format(
                    port, os.path.join(root, 'certs', 'device-ca.pem'),
                    os.path.join(root, 'ggc', 'var', 'state', 'server', 'server.crt'),
                    os.path.join(root, 'ggc', 'var', 'state', 'server', 'server.key')) + extra)
    broker = subprocess.Popen(['mosquitto', '-c', conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return port, broker


def mosquitto_relay(work, certs, n, qos, payload, relay_argv=None):
    """The same relay done by a Python paho client through Mosquitto (or by
    the client `relay_argv + [certs, port, qos]` starts, which prints a line
    once subscribed)."""
    port, broker = start_mosquitto(work, os.path.join(work, 'ggcore-root'))
    relay_code = '''
import os, ssl, sys, paho.mqtt.client as mqtt
certs, port, qos = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id='relay', protocol=mqtt.MQTTv311)
c.tls_set(ca_certs=os.path.join(certs, 'group-ca.pem'), certfile=os.path.join(certs, 'relay.cert.pem'),
          keyfile=os.path.join(certs, 'relay.private.key'), tls_version=ssl.PROTOCOL_TLS_CLIENT)
def on_message(cl, u, msg):
    cl.publish('bench/out', msg.payload, qos=qos)
c.on_message = on_message
c.connect('localhost', port)
c.subscribe('bench/in', qos=qos)
sys.stdout.write('ready\\n'); sys.stdout.flush()
c.loop_forever()
'''
    if relay_argv is None:
        relay_argv = [sys.executable, '-c', relay_code]
    relay = subprocess.Popen(relay_argv + [certs, str(port), str(qos)], stdout=subprocess.PIPE)
    relay.stdout.readline()
    res = SinkProcess(certs, port, 'bench/out')
    pub = client(certs, 'source', port)
    pub.loop_start()
    time.sleep(0.5)
    relay_run(pub, res, min(n, 500), qos, payload)  # warm-up
    out = relay_run(pub, res, n, qos, payload)
    pub.loop_stop()
    pub.disconnect()
    res.stop()
    relay.kill()
    broker.kill()
    return out


# The core's per-function counters compared with the driver's own accounting.
COUNTERS = ('invocations', 'succeeded', 'handledErrors', 'unhandledErrors', 'timeouts', 'crashes', 'outOfMemory',
            'rejectedQueueFull', 'instancesStarted')


def cross_check(tp, before, after):
    """The core's counters for the calls of one invokes/s run (after - before)
    against what the driver counted; 'consistent' says whether they agree."""
    d = {k: after[k] - before[k] for k in COUNTERS}
    host = sum(tp['host_errors'].values())
    mismatches = []
    for what, core_n, driver_n in (('succeeded', d['succeeded'], tp['ok']),
                                   ('handled errors', d['handledErrors'], tp['handled']),
                                   ('unhandled errors', d['unhandledErrors'], tp['unhandled']),
                                   ('rejected (queue full)', d['rejectedQueueFull'], host)):
        if core_n != driver_n:
            mismatches.append('{}: core {} vs driver {}'.format(what, core_n, driver_n))
    d['answered'] = d['succeeded'] + d['handledErrors'] + d['unhandledErrors'] + d['rejectedQueueFull']
    d['consistent'] = not mismatches
    d['mismatches'] = mismatches
    return d


def run_benchmarks(args):
    n_lat = 1000 if args.quick else 5000
    n_relay = 2000 if args.quick else 10000
    work = args.work or tempfile.mkdtemp(prefix='ggcore-fn-bench-')
    functions = {
        'driver': (DRIVER_PY, {'Pinned': True, 'Timeout': 300}),
        'noop': (NOOP_PY, {'Pinned': True}),
        'noop-ondemand': (NOOP_PY, {'Pinned': False, 'Timeout': NOOP_TIMEOUT_S}),
        # Each cold-N is invoked once, cold, for the cold-start figure.
        **{'cold-{}'.format(k): (NOOP_PY, {'Pinned': False}) for k in range(COLD_STARTS)},
        'relay': (RELAY_PY, {'Pinned': True, 'EncodingType': 'binary'}),
    }
    subs = [
        (thing('trigger'), 'bench/go', arn('driver')),
        (arn('driver'), 'bench/result', thing('trigger')),
        (thing('source'), 'bench/in', arn('relay')),
        (arn('relay'), 'bench/out', thing('sink')),
    ]
    core = Core(work, functions, subs, ['trigger', 'source', 'sink', 'relay'])
    awake = Awake(False)
    report = {'machine': {'nproc': os.cpu_count(), 'python': sys.version.split()[0], 'quick': args.quick}}
    try:
        trigger, results = start_trigger(core)

        # 1. warm invoke latency vs raw pipe.
        awake = Awake(args.awake)
        report['machine']['awake'] = args.awake
        call_driver(trigger, results, {'op': 'latency', 'target': arn('noop'), 'n': 200})
        lat = call_driver(trigger, results, {'op': 'latency', 'target': arn('noop'), 'n': n_lat})['lat_us']
        pipe = [x * 1e6 for x in pipe_round_trip(n_lat)]
        report['warm_invoke'] = {'n': n_lat, 'p50_us': pct(lat, 0.5), 'p99_us': pct(lat, 0.99),
                                 'pipe_p50_us': round(pct(pipe, 0.5), 1), 'pipe_p99_us': round(pct(pipe, 0.99), 1)}

        # 4. cold start (the on-demand function has not run yet).
        first = call_driver(trigger, results, {'op': 'first', 'target': arn('noop-ondemand')})
        warm = call_driver(trigger, results, {'op': 'latency', 'target': arn('noop-ondemand'), 'n': 200})['lat_us']
        # More cold starts, one per function, a second apart (the zygote forks
        # the next spare in the background meanwhile, as it would between
        # real cold starts).
        firsts = [first['first_us']]
        for k in range(COLD_STARTS):
            time.sleep(1.0)
            firsts.append(call_driver(trigger, results, {'op': 'first', 'target': arn('cold-{}'.format(k))})['first_us'])
        # The peer: a new python3 process that imports the SDK (with a stand-in for
        # the native module the runtime provides) and answers one request.
        stub = os.path.join(work, 'stub')
        os.makedirs(stub, exist_ok=True)
        with open(os.path.join(stub, '_ggcore.py'), 'w') as f:
            f.write('class HostError(Exception):\n    pass\n')
        spawn = []
        for _ in range(10):
            t = time.perf_counter()
            subprocess.run([sys.executable, '-c', 'import greengrasssdk; greengrasssdk.client("iot-data")'],
                           env=dict(os.environ, PYTHONPATH=stub + ':' + SDK), check=True)
            spawn.append((time.perf_counter() - t) * 1e6)
        cold = sorted(f - pct(warm, 0.5) for f in firsts)
        report['cold_start'] = {'n': len(firsts), 'first_invoke_p50_us': round(pct(firsts, 0.5), 1),
                                'warm_invoke_p50_us': pct(warm, 0.5),
                                'cold_start_p50_us': round(pct(cold, 0.5), 1),
                                'cold_start_min_max_us': [round(cold[0], 1), round(cold[-1], 1)],
                                'spawn_n': len(spawn),
                                'spawn_python_with_sdk_p50_us': round(pct(spawn, 0.5), 1)}
        awake.stop()

        # 5. idle memory.
        time.sleep(2)
        st = core.status()
        procs = {'core': core.proc.pid}
        for f in st['functions']:
            name = f['arn'].split(':')[6]
            if name.startswith('cold-'):
                continue
            for inst in f['instances']:
                procs[name + ' instance'] = inst['pid']
        zygote = subprocess.run(['pgrep', '-f', 'ggcore-worker zygote ' + os.path.join(core.root, 'ggc/socket/ipc.sock')],
                                capture_output=True, text=True).stdout.split()
        if zygote:
            procs['zygote'] = int(sorted(zygote, key=int)[0])
        report['idle_memory_kb'] = {name: dict(zip(('rss', 'private'), rss_kb(pid))) for name, pid in procs.items()}

        # 3. invokes per second with both cores busy, and a worker killed midway;
        # every call accounted for, by the driver and by the core.
        call_driver(trigger, results, {'op': 'throughput', 'target': arn('noop-ondemand'), 'threads': 8, 'seconds': 2,
                                       'grace': INVOKE_GRACE_S})
        seconds = 5 if args.quick else 10
        threads = 16
        killer_result = {}

        def kill_one():
            time.sleep(seconds / 2)
            f = core.function('noop-ondemand')
            pids = [i['pid'] for i in f['instances'] if i['pid']]
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killer_result['killed'] = pids[0]
        before = core.function('noop-ondemand')
        threading.Thread(target=kill_one).start()
        tp = call_driver(trigger, results, {'op': 'throughput', 'target': arn('noop-ondemand'), 'threads': threads,
                                            'seconds': seconds, 'grace': INVOKE_GRACE_S})
        after = core.function('noop-ondemand')
        report['invokes_per_second'] = {
            'threads': threads, 'requested_seconds': seconds, 'seconds': round(tp['seconds'], 2),
            'per_s': round((tp['ok'] + tp['handled'] + tp['unhandled']) / tp['seconds']),
            'issued': tp['issued'], 'answered': tp['answered'], 'ok': tp['ok'], 'handled_errors': tp['handled'],
            'unhandled_errors': tp['unhandled'], 'host_errors': tp['host_errors'], 'lost': tp['lost'],
            'still_waiting_threads': tp['still_waiting_threads'], 'grace_s': INVOKE_GRACE_S,
            'killed_pid': killer_result.get('killed'),
            'core_counters': cross_check(tp, before, after)}

        # 2. device -> function -> device relay vs Mosquitto + paho relay.
        source = client(core.certs, 'source', core.port)
        res = SinkProcess(core.certs, core.port, 'bench/out')
        source.loop_start()
        time.sleep(0.5)
        relay = {}
        for qos in (0, 1):
            relay_run(source, res, min(n_relay, 500), qos, 'x' * 64)
            rate, lat, got, dup = relay_run(source, res, n_relay, qos, 'x' * 64)
            m_rate, m_lat, m_got, m_dup = mosquitto_relay(work, core.certs, n_relay, qos, 'x' * 64)
            relay['qos{}'.format(qos)] = {
                'n': n_relay, 'ggcore_msgs_per_s': round(rate), 'ggcore_received': got, 'ggcore_lost': n_relay - got,
                'ggcore_duplicates': dup,
                'ggcore_p50_ms': round(pct(lat, 0.5) * 1e3, 2), 'ggcore_p99_ms': round(pct(lat, 0.99) * 1e3, 2),
                'mosquitto_paho_msgs_per_s': round(m_rate), 'mosquitto_received': m_got, 'mosquitto_lost': n_relay - m_got,
                'mosquitto_duplicates': m_dup,
                'mosquitto_p50_ms': round(pct(m_lat, 0.5) * 1e3, 2), 'mosquitto_p99_ms': round(pct(m_lat, 0.99) * 1e3, 2),
                'ratio': round(rate / m_rate, 2) if m_rate else None}
        report['relay'] = relay
        res.stop()
        stop_clients(source, trigger)
    finally:
        awake.stop()
        core.stop()
    return report, write_results(work, 'results-functions.json', report, keep_root=bool(args.work))


def write_results(work, name, report, keep_root):
    """Writes WORK/NAME (every number of the run); drops the root made in a
    temporary WORK. Returns the path written."""
    path = os.path.join(work, name)
    with open(path, 'w') as f:
        json.dump(report, f, indent=1)
    if not keep_root:
        shutil.rmtree(os.path.join(work, 'ggcore-root'), ignore_errors=True)
    return path


def mode(report):
    return '`--awake`' if report['machine'].get('awake') else 'CPUs idle'


def figures(r):
    """(figure, value) rows of one run: the table of BENCHMARKS.md."""
    w, c, t, rel = r['warm_invoke'], r['cold_start'], r['invokes_per_second'], r['relay']
    cc = t['core_counters']
    host = sum(t['host_errors'].values())
    q0, q1 = rel['qos0'], rel['qos1']

    def rate(q):
        return '{:,} vs {:,} ({}×)'.format(q['ggcore_msgs_per_s'], q['mosquitto_paho_msgs_per_s'], q['ratio'])

    def lost(q, who):
        extra = ' (+{} dup)'.format(q[who + '_duplicates']) if q[who + '_duplicates'] else ''
        return '{}{}'.format(q[who + '_lost'], extra)
    return [
        ('warm function → function `RequestResponse` invoke of a no-op, p50 / p99 ({:,} calls)'.format(w['n']),
         '{:.0f} / {:.0f} µs'.format(w['p50_us'], w['p99_us'])),
        ('peer: raw pipe round trip between two Python processes, p50 / p99',
         '{:.1f} / {:.1f} µs'.format(w['pipe_p50_us'], w['pipe_p99_us'])),
        ('cold start of an on-demand instance, p50 (min–max) of {}'.format(c['n']),
         '{:.1f} ms ({:.1f}–{:.1f})'.format(c['cold_start_p50_us'] / 1e3, c['cold_start_min_max_us'][0] / 1e3,
                                           c['cold_start_min_max_us'][1] / 1e3)),
        ('peer: spawn `python3` and import the Greengrass SDK, p50 of {}'.format(c.get('spawn_n', 10)),
         '{:.1f} ms'.format(c['spawn_python_with_sdk_p50_us'] / 1e3)),
        ('trivial invokes/s, {} calling threads, both cores busy, {} s'.format(t['threads'], t['requested_seconds']),
         '{:,}'.format(t['per_s'])),
        ('… one instance SIGKILLed mid-run: calls issued / answered ok / function errors / host errors / '
         'lost (issued − answered, {} s after the end)'.format(t['grace_s']),
         '{:,} / {:,} / {} / {} / {}'.format(t['issued'], t['ok'], t['handled_errors'] + t['unhandled_errors'], host,
                                             t['lost'])),
        ("… the core's counters for the same calls (`ggcore status --json`, after − before): invocations / "
         'succeeded / function errors / rejected; agree with the driver',
         '{:,} / {:,} / {} / {}; {}'.format(cc['invocations'], cc['succeeded'], cc['handledErrors'] + cc['unhandledErrors'],
                                            cc['rejectedQueueFull'],
                                            'yes' if cc['consistent'] else 'NO: ' + '; '.join(cc['mismatches']))),
        ('device → Python function → device relay, QoS 0: ggcore vs Mosquitto + paho (msg/s)', rate(q0)),
        ('same, QoS 1', rate(q1)),
        ('relay messages lost of {:,}, QoS 0 / QoS 1: ggcore vs Mosquitto + paho'.format(q0['n']),
         '{} / {} vs {} / {}'.format(lost(q0, 'ggcore'), lost(q1, 'ggcore'), lost(q0, 'mosquitto'), lost(q1, 'mosquitto'))),
        ('relay latency p50 / p99, QoS 1: ggcore vs Mosquitto + paho',
         '{} / {} vs {} / {} ms'.format(q1['ggcore_p50_ms'], q1['ggcore_p99_ms'], q1['mosquitto_p50_ms'], q1['mosquitto_p99_ms'])),
    ]


def markdown(reports):
    """The figures table (a column per run) and the idle memory table of the
    first run."""
    rows = [figures(r) for r in reports]
    out = ['| figure | ' + ' | '.join(mode(r) for r in reports) + ' |',
           '|---|' + '---:|' * len(reports)]
    for k, (label, _) in enumerate(rows[0]):
        out.append('| {} | {} |'.format(label, ' | '.join(r[k][1] for r in rows)))
    out += ['', 'Idle memory ({} run; RSS counts the pages an instance shares with the zygote, private is what each '
                'process adds):'.format(mode(reports[0])), '',
            '| process | RSS | private |', '|---|---:|---:|']
    for name, m in sorted(reports[0]['idle_memory_kb'].items(), key=lambda kv: (kv[0] not in ('core', 'zygote'), kv[0])):
        out.append('| {} | {:.1f} MB | {:.1f} MB |'.format(name, m['rss'] / 1024, m['private'] / 1024))
    return '\n'.join(out)


def cli(run_benchmarks, markdown, results_name):
    """The command line of a function bench: run it and print its table, or
    print the table of earlier runs (`--combine`) from their RESULTS_NAME."""
    ap = argparse.ArgumentParser()
    ap.add_argument('--quick', action='store_true', help='fewer iterations')
    ap.add_argument('--work', default=None)
    ap.add_argument('--awake', action='store_true',
                    help='keep every CPU busy at nice 19 while latencies are measured (see Awake in bench_functions.py)')
    ap.add_argument('--combine', nargs='+', metavar='JSON',
                    help='print the table of two (or more) earlier runs side by side, from their ' + results_name)
    args = ap.parse_args()
    if args.combine:
        reports = []
        for p in args.combine:
            with open(p) as f:
                reports.append(json.load(f))
        print(markdown(reports))
        return
    report, path = run_benchmarks(args)
    print(markdown([report]))
    print()
    print('results:', path)


def main():
    cli(run_benchmarks, markdown, 'results-functions.json')


if __name__ == '__main__':
    main()
