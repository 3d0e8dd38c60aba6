#!/usr/bin/env python3
"""Node.js function benchmarks for ggcore, each figure beside its peer.

Run with the test venv's Python (paho-mqtt installed), after `cargo build` and
`scripts/test` (which installs node's `mqtt` package in ~/.cache/ggcore/npm):

    $HOME/.cache/ggcore/venv/bin/python benches/functions/bench_node.py [--quick] [--awake] [--work DIR]
    $HOME/.cache/ggcore/venv/bin/python benches/functions/bench_node.py --combine IDLE.json AWAKE.json

It makes a temporary root, starts `ggcore run`, deploys one group holding
Node.js (`nodejs12.x`, served on the installed Node) and Python 3.11
functions, and measures in that one run:

1. warm invoke: a pinned Python driver calls a pinned Node no-op with
   RequestResponse (p50/p99), and a pinned Python no-op the same way, the two
   alternating in blocks of WARM_BLOCK calls;
2. cold start: the first invoke of an on-demand function minus the p50 of
   warm invokes of that same function, Node and Python alternating, one
   function each COLD_GAP_S apart (whatever the core starts ahead of need has
   that long to get ready, as between real cold starts); peers: spawning
   `node` that requires ggcore's aws-greengrass-core-sdk, and `python3` that
   imports the Greengrass SDK. Nothing here knows how the core starts a Node
   instance: re-run it after a change to get the new figure;
3. idle memory of an instance (RSS and private): for Node the worker process
   plus its node child (and the child alone); a Python instance beside it;
   peer: a plain idle `node` with the SDK required;
4. device -> Node function -> device relay (QoS 0 and 1: msgs/s, lost,
   latency) vs the same relay done by a Node.js `mqtt` client through
   Mosquitto (TLS, same certificates); the same harness as bench_functions.py
   (a paho source keeping at most RELAY_WINDOW messages not yet back, the
   sink its own paho process); a Python relay function in the same core as
   context.

Writes every number to WORK/results-node.json and prints a Markdown table.
Benchmarks report; nothing here asserts a timing.
"""
import os
import subprocess
import sys
import tempfile
import time

from bench_functions import (call_driver, cli, cold_starts, fmt_cold, fmt_lost, fmt_ms, fmt_rate, mode, relay_comparison, start_trigger,
                             stop_clients, write_results, DRIVER_PY, NOOP_PY, RELAY_PY, REPO, SDK, Awake, Core, arn, pct,
                             rss_kb, thing)

NODE = 'nodejs12.x'
SDK_NODE = os.path.join(REPO, 'sdk-node')
NODE_SDK_MODULE = os.path.join(SDK_NODE, 'node_modules', 'aws-greengrass-core-sdk')
NPM = os.path.join(os.environ.get('GGCORE_TEST_NPM', os.path.expanduser('~/.cache/ggcore/npm')), 'node_modules')
# Cold starts measured per runtime besides the first.
COLD_STARTS = 6
COLD_GAP_S = 1.0
WARM_BLOCK = 1000

NOOP_JS = '''
exports.handler = function (event, context, callback) {
    callback(null, null);
};
'''

RELAY_JS = '''
const { IotData } = require('aws-greengrass-core-sdk');
const iot = new IotData();
// EncodingType binary: the event is a Buffer of the payload, relayed as it is.
exports.handler = function (event, context, callback) {
    iot.publish({ topic: 'bench/out', payload: event }, (err) => callback(err));
};
'''

# The peer relay: a plain Node.js program with the `mqtt` package, doing what
# the relay function does (argv: certs dir, port, QoS).
MQTT_RELAY_JS = '''
const fs = require('fs');
const path = require('path');
const mqtt = require(process.env.MQTT_MODULE);
const [certs, port, qos] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const c = mqtt.connect({
    host: 'localhost', port, protocol: 'mqtts', protocolVersion: 4, clientId: 'relay', reconnectPeriod: 0,
    ca: fs.readFileSync(path.join(certs, 'group-ca.pem')),
    cert: fs.readFileSync(path.join(certs, 'relay.cert.pem')),
    key: fs.readFileSync(path.join(certs, 'relay.private.key')),
});
c.on('message', (topic, payload) => c.publish('bench/out', payload, { qos }));
c.on('error', (e) => { console.error(e); process.exit(1); });
c.on('connect', () => c.subscribe('bench/in', { qos }, (err) => {
    if (err) { console.error(err); process.exit(1); }
    process.stdout.write('ready\\n');
}));
'''


def git_commit():
    out = subprocess.run(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(['git', '-C', REPO, 'status', '--porcelain', '--untracked-files=no'],
                           capture_output=True, text=True).stdout.strip()
    return out + ('+changes' if dirty else '')


def children(pid):
    """The direct children of a process."""
    kids = []
    try:
        for tid in os.listdir('/proc/{}/task'.format(pid)):
            with open('/proc/{}/task/{}/children'.format(pid, tid)) as f:
                kids += [int(k) for k in f.read().split()]
    except OSError:
        pass
    return kids


def cmdline(pid):
    try:
        with open('/proc/{}/cmdline'.format(pid), 'rb') as f:
            return f.read().replace(b'\0', b' ').decode(errors='replace').strip()
    except OSError:
        return ''


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def node_spares(core_pid):
    """The core's node processes running the bootstrap in `spare` mode
    (started ahead of need; none before the core has them)."""
    return sum('bootstrap.js spare' in cmdline(p) for p in descendants(core_pid))


def memory(pid):
    rss, priv = rss_kb(pid)
    return {'rss': rss, 'private': priv}


def instance_memory(pid):
    """An instance: its worker, and for Node its node child(ren)."""
    out = {'worker': memory(pid), 'pid': pid}
    nodes = [k for k in children(pid) if 'node' in cmdline(k).split(' ')[0]]
    if nodes:
        child = {'rss': 0, 'private': 0}
        for k in nodes:
            m = memory(k)
            child['rss'] += m['rss']
            child['private'] += m['private']
        out['node_child'] = child
    out['total'] = {k: out['worker'][k] + out.get('node_child', {}).get(k, 0) for k in ('rss', 'private')}
    return out


def spawn_times(argv, env, n=10):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, env=env, check=True)
        times.append((time.perf_counter() - t) * 1e6)
    return times


def plain_node_idle():
    """RSS/private of an idle `node` that required the SDK (the peer of 3)."""
    p = subprocess.Popen(['node', '-e', "require('{}'); setInterval(() => {{}}, 1e6); console.log('up')".format(
        NODE_SDK_MODULE)], stdout=subprocess.PIPE, text=True)
    p.stdout.readline()
    time.sleep(1.0)
    m = memory(p.pid)
    p.kill()
    p.wait()
    return m


def latencies(trigger, results, target, n):
    return call_driver(trigger, results, {'op': 'latency', 'target': target, 'n': n})['lat_us']


def run_benchmarks(args):
    n_lat = 1000 if args.quick else 5000
    n_relay = 2000 if args.quick else 10000
    work = args.work or tempfile.mkdtemp(prefix='ggcore-node-bench-')
    os.makedirs(work, exist_ok=True)
    os.environ.setdefault('GGCORE_SDK_ROOT', REPO)
    functions = {
        'driver': (DRIVER_PY, {'Pinned': True, 'Timeout': 300}),
        'noop-node': (NOOP_JS, {'Pinned': True}, NODE),
        'noop-py': (NOOP_PY, {'Pinned': True}),
        'ondemand-node': (NOOP_JS, {'Pinned': False}, NODE),
        'ondemand-py': (NOOP_PY, {'Pinned': False}),
        **{'cold-node-{}'.format(k): (NOOP_JS, {'Pinned': False}, NODE) for k in range(COLD_STARTS)},
        **{'cold-py-{}'.format(k): (NOOP_PY, {'Pinned': False}) for k in range(COLD_STARTS)},
        'relay-node': (RELAY_JS, {'Pinned': True, 'EncodingType': 'binary'}, NODE),
        'relay-py': (RELAY_PY, {'Pinned': True, 'EncodingType': 'binary'}),
    }
    subs = [
        (thing('trigger'), 'bench/go', arn('driver')),
        (arn('driver'), 'bench/result', thing('trigger')),
        (thing('source'), 'bench/in', arn('relay-node')),
        (thing('source-py'), 'bench/in', arn('relay-py')),
        (arn('relay-node'), 'bench/out', thing('sink')),
        (arn('relay-py'), 'bench/out', thing('sink')),
    ]
    core = Core(work, functions, subs, ['trigger', 'source', 'source-py', 'sink', 'relay'])
    awake = Awake(False)
    node_version = subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()
    report = {'machine': {'nproc': os.cpu_count(), 'python': sys.version.split()[0], 'node': node_version,
                          'quick': args.quick, 'awake': args.awake, 'commit': git_commit()}}
    try:
        trigger, results = start_trigger(core)

        # 1. warm invoke, Node and Python no-ops alternating in blocks.
        awake = Awake(args.awake)
        latencies(trigger, results, arn('noop-node'), 200)
        latencies(trigger, results, arn('noop-py'), 200)
        lat = {'node': [], 'py': []}
        for _ in range(max(1, n_lat // WARM_BLOCK)):
            for kind in ('node', 'py'):
                lat[kind] += latencies(trigger, results, arn('noop-' + kind), min(WARM_BLOCK, n_lat))
        report['warm_invoke'] = {'n': len(lat['node'])}
        for kind in ('node', 'py'):
            report['warm_invoke'][kind] = {'p50_us': pct(lat[kind], 0.5), 'p99_us': pct(lat[kind], 0.99)}

        # 2. cold start.
        report['machine']['node_spares_before_cold_starts'] = node_spares(core.proc.pid)
        cold = cold_starts(trigger, results, ('node', 'py'), COLD_STARTS, COLD_GAP_S)
        stub = os.path.join(work, 'stub')
        os.makedirs(stub, exist_ok=True)
        with open(os.path.join(stub, '_ggcore.py'), 'w') as f:
            f.write('class HostError(Exception):\n    pass\n')
        spawn = {
            'node': spawn_times(['node', '-e', "require('{}')".format(NODE_SDK_MODULE)], dict(os.environ)),
            'py': spawn_times([sys.executable, '-c', 'import greengrasssdk; greengrasssdk.client("iot-data")'],
                              dict(os.environ, PYTHONPATH=stub + ':' + SDK)),
        }
        report['cold_start'] = {'gap_s': COLD_GAP_S}
        for kind in ('node', 'py'):
            report['cold_start'][kind] = dict(cold[kind], spawn_n=len(spawn[kind]),
                                              spawn_with_sdk_p50_us=round(pct(spawn[kind], 0.5), 1))
        awake.stop()

        # 3. idle memory.
        time.sleep(2)
        mem = {}
        for f in core.status()['functions']:
            name = f['arn'].split(':')[6]
            if name.startswith('cold-'):
                continue
            for inst in f['instances']:
                if inst.get('pid'):
                    mem[name] = instance_memory(inst['pid'])
        zygotes = {}
        for pid in subprocess.run(['pgrep', '-f', 'ggcore-worker zygote ' + os.path.join(core.root, 'ggc/socket/ipc.sock')],
                                  capture_output=True, text=True).stdout.split():
            zygotes[cmdline(int(pid))] = memory(int(pid))
        report['idle_memory_kb'] = {'instances': mem, 'zygotes': zygotes, 'core': memory(core.proc.pid),
                                    'plain_node_with_sdk': plain_node_idle(),
                                    'node_spares': node_spares(core.proc.pid)}

        # 4. relay: device -> Node function -> device vs a Node mqtt client on Mosquitto.
        relay_js = os.path.join(work, 'mqtt-relay.js')
        with open(relay_js, 'w') as f:
            f.write(MQTT_RELAY_JS)
        os.environ['MQTT_MODULE'] = os.path.join(NPM, 'mqtt')
        report['relay'] = relay_comparison(work, core, {'node': 'source', 'py': 'source-py'}, n_relay, 'node',
                                           'mosquitto_node_mqtt', relay_argv=['node', relay_js])
        stop_clients(trigger)
    finally:
        awake.stop()
        core.stop()
    return report, write_results(work, 'results-node.json', report, keep_root=bool(args.work))


def figures(r):
    """(figure, value) rows of one run."""
    w, c, rel = r['warm_invoke'], r['cold_start'], r['relay']

    def cold(k):
        return fmt_cold(c[k])

    def rate(q):
        return fmt_rate(q, 'node', 'mosquitto_node_mqtt')

    q0, q1 = rel['qos0'], rel['qos1']
    return [
        ('warm `RequestResponse` invoke from a Python function, p50 / p99 ({:,} calls each): Node no-op vs Python no-op'
         .format(w['n']),
         '{:.0f} / {:.0f} vs {:.0f} / {:.0f} µs'.format(w['node']['p50_us'], w['node']['p99_us'], w['py']['p50_us'],
                                                        w['py']['p99_us'])),
        ('cold start of an on-demand instance, p50 (min–max) of {}: Node vs Python'.format(c['node']['n']),
         '{} vs {}'.format(cold('node'), cold('py'))),
        ('peer: spawn `node` requiring the SDK vs `python3` importing the SDK, p50 of {}'.format(c['node']['spawn_n']),
         '{} vs {} ms'.format(fmt_ms(c['node']['spawn_with_sdk_p50_us']), fmt_ms(c['py']['spawn_with_sdk_p50_us']))),
        ('device → Node function → device relay, QoS 0: ggcore vs Mosquitto + Node `mqtt` (msg/s)', rate(q0)),
        ('same, QoS 1', rate(q1)),
        ('relay messages lost of {:,}, QoS 0 / QoS 1: ggcore (Node function) vs Mosquitto + Node `mqtt`'.format(q0['n']),
         '{} / {} vs {} / {}'.format(fmt_lost(q0['ggcore_node']), fmt_lost(q1['ggcore_node']), fmt_lost(q0['mosquitto_node_mqtt']),
                                     fmt_lost(q1['mosquitto_node_mqtt']))),
        ('relay latency p50 / p99, QoS 0: ggcore (Node function) vs Mosquitto + Node `mqtt`',
         '{} / {} vs {} / {} ms'.format(q0['ggcore_node']['p50_ms'], q0['ggcore_node']['p99_ms'],
                                        q0['mosquitto_node_mqtt']['p50_ms'], q0['mosquitto_node_mqtt']['p99_ms'])),
        ('same, QoS 1',
         '{} / {} vs {} / {} ms'.format(q1['ggcore_node']['p50_ms'], q1['ggcore_node']['p99_ms'],
                                        q1['mosquitto_node_mqtt']['p50_ms'], q1['mosquitto_node_mqtt']['p99_ms'])),
        ('context: the same relay through a Python function in the same core, QoS 0 / QoS 1 (msg/s; lost)',
         '{:,} / {:,}; {} / {}'.format(q0['ggcore_py']['msgs_per_s'], q1['ggcore_py']['msgs_per_s'],
                                       fmt_lost(q0['ggcore_py']), fmt_lost(q1['ggcore_py']))),
    ]


def markdown(reports):
    rows = [figures(r) for r in reports]
    out = ['| figure | ' + ' | '.join(mode(r) for r in reports) + ' |', '|---|' + '---:|' * len(reports)]
    for k, (label, _) in enumerate(rows[0]):
        out.append('| {} | {} |'.format(label, ' | '.join(r[k][1] for r in rows)))
    out += ['', 'Node spares (node processes of the core in `spare` mode) running before the cold starts: ' +
            ' | '.join('{} ({})'.format(r['machine'].get('node_spares_before_cold_starts'), mode(r)) for r in reports) +
            '; commit ' + ', '.join(sorted({r['machine']['commit'] for r in reports})) + '.']
    m = reports[0]['idle_memory_kb']

    def mb(x):
        return '{:.1f} MB | {:.1f} MB'.format(x['rss'] / 1024, x['private'] / 1024)
    out += ['', 'Idle memory ({} run, commit {}):'.format(mode(reports[0]), reports[0]['machine']['commit']), '',
            '| process | RSS | private |', '|---|---:|---:|']
    for name, inst in sorted(m['instances'].items()):
        if 'node_child' in inst:
            out.append('| {} instance: worker + node | {} |'.format(name, mb(inst['total'])))
            out.append('| … its node child alone | {} |'.format(mb(inst['node_child'])))
            out.append('| … its worker alone | {} |'.format(mb(inst['worker'])))
        else:
            out.append('| {} instance | {} |'.format(name, mb(inst['total'])))
    out.append('| peer: plain idle `node` with the SDK required | {} |'.format(mb(m['plain_node_with_sdk'])))
    for cmd, z in sorted(m['zygotes'].items()):
        # ggcore-worker zygote SOCKET TOKEN PLUGIN RUNTIME SDK_DIRS...
        argv = cmd.split(' ')
        label = '{}, {}'.format(os.path.basename(argv[4]), argv[5]) if len(argv) > 5 else 'zygote'
        out.append('| zygote ({}) | {} |'.format(label, mb(z)))
    out.append('| core | {} |'.format(mb(m['core'])))
    return '\n'.join(out)


def main():
    cli(run_benchmarks, markdown, 'results-node.json')


if __name__ == '__main__':
    main()
