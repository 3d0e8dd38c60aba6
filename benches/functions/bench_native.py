#!/usr/bin/env python3
"""Native (C) and Java function benchmarks for ggcore, beside Python and Node.js.

Run with the test venv's Python (paho-mqtt installed), after `cargo build`
(the C programs are compiled here with `cc` against `ggcore sdk path c`):

    $HOME/.cache/ggcore/venv/bin/python benches/functions/bench_native.py [--quick] [--awake] [--work DIR]
    $HOME/.cache/ggcore/venv/bin/python benches/functions/bench_native.py --combine IDLE.json AWAKE.json

It makes a temporary root, starts `ggcore run`, deploys one group holding C
(runtime `executable`), Java (`java11`, on the installed JDK; the Java
functions are compiled here with `javac` against `ggcore sdk path java`),
Python 3.11 and Node.js no-op functions, and measures in that one run:

1. warm invoke: a pinned Python driver calls a pinned no-op of each runtime
   with RequestResponse (p50/p99), in alternating blocks of WARM_BLOCK calls;
2. cold start: the first invoke of an on-demand function minus the p50 of
   warm invokes of that same function, the runtimes alternating, one
   function each COLD_GAP_S apart; peers: spawning the C no-op program itself
   (it loads the SDK library, finds no core and exits) and `java` running an
   empty main with the SDK jar on its class path;
3. idle memory of an instance (RSS and private): for C and Node the worker
   plus its child, and the child alone; Java (the JVM is in the worker) and
   Python beside them;
4. device -> C function -> device and device -> Java function -> device
   relays (QoS 0 and 1: msgs/s, lost, latency) vs the same relay done by a
   Python paho client through Mosquitto (the harness of bench_functions.py);
   the Python relay function in the same core as context.

Writes every number to WORK/results-native.json and prints a Markdown table.
Benchmarks report; nothing here asserts a timing.
"""
import os
import subprocess
import sys
import tempfile
import time

from bench_functions import (cli, cold_starts, fmt_cold, fmt_lost, fmt_ms, fmt_rate, mode, relay_comparison, start_trigger,
                             stop_clients, write_results, DRIVER_PY, GGCORE, NOOP_PY, RELAY_PY, REPO, Awake, Core, arn, pct,
                             thing)
from bench_node import NOOP_JS, NODE, children, cmdline, git_commit, latencies, memory

COLD_STARTS = 6
COLD_GAP_S = 1.0
WARM_BLOCK = 1000
KINDS = ('c', 'py', 'node', 'java')
JAVA = 'java11'

NOOP_JAVA = '''
package bench;
public class Noop {
    public byte[] handle(byte[] event) { return null; }
}
'''

RELAY_JAVA = '''
package bench;
import java.nio.ByteBuffer;
import com.amazonaws.greengrass.javasdk.IotDataClient;
import com.amazonaws.greengrass.javasdk.model.PublishRequest;
public class Relay {
    private final IotDataClient iot = new IotDataClient();
    public byte[] handle(byte[] event) throws Exception {
        iot.publish(new PublishRequest().withTopic("bench/out").withPayload(ByteBuffer.wrap(event)));
        return null;
    }
}
'''

EMPTY_MAIN_JAVA = '''
package bench;
public class Empty {
    public static void main(String[] args) throws Exception {
        Class.forName("com.amazonaws.greengrass.javasdk.IotDataClient");
    }
}
'''


NOOP_C = r'''
#include "greengrasssdk.h"
static void handler(const gg_lambda_context *cxt) { (void)cxt; }
int main(void) {
    if (gg_global_init(0) != GGE_SUCCESS) return 1;
    gg_runtime_start(handler, 0);
    return 0;
}
'''

# EncodingType binary: the event is relayed as it is.
RELAY_C = r'''
#include "greengrasssdk.h"
static unsigned char buf[1 << 16];
static void handler(const gg_lambda_context *cxt) {
    size_t total = 0, got = 0;
    gg_request req;
    gg_request_result res;
    (void)cxt;
    do {
        gg_lambda_handler_read(buf + total, sizeof(buf) - total, &got);
        total += got;
    } while (got > 0 && total < sizeof(buf));
    gg_request_init(&req);
    gg_publish(req, "bench/out", buf, total, &res);
    gg_request_close(req);
}
int main(void) {
    if (gg_global_init(0) != GGE_SUCCESS) return 1;
    gg_runtime_start(handler, 0);
    return 0;
}
'''


def compile_c(work, name, source):
    prefix = subprocess.run([GGCORE, 'sdk', 'path', 'c'], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    src = os.path.join(work, name + '.c')
    out = os.path.join(work, name)
    with open(src, 'w') as f:
        f.write(source)
    subprocess.run(['cc', '-O2', '-o', out, src, '-I', os.path.join(prefix, 'include'), '-L', os.path.join(prefix, 'lib'),
                    '-laws-greengrass-core-sdk-c'], check=True)
    with open(out, 'rb') as f:
        return f.read(), out, os.path.join(prefix, 'lib')


def build_java(work):
    """The Java no-op, relay and empty main, compiled against `ggcore sdk path java`: (jar bytes, jar path, sdk jar)."""
    sdk = subprocess.run([GGCORE, 'sdk', 'path', 'java'], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    src = os.path.join(work, 'java-src', 'bench')
    os.makedirs(src, exist_ok=True)
    files = []
    for name, text in (('Noop', NOOP_JAVA), ('Relay', RELAY_JAVA), ('Empty', EMPTY_MAIN_JAVA)):
        path = os.path.join(src, name + '.java')
        with open(path, 'w') as f:
            f.write(text)
        files.append(path)
    classes = os.path.join(work, 'java-classes')
    subprocess.run(['javac', '--release', '11', '-cp', sdk, '-d', classes] + files, check=True)
    jar = os.path.join(work, 'bench.jar')
    subprocess.run(['jar', 'cf', jar, '-C', classes, '.'], check=True)
    with open(jar, 'rb') as f:
        return f.read(), jar, sdk


def instance_memory(pid):
    """An instance: its worker and its child (the C program or node), if any."""
    out = {'worker': memory(pid), 'pid': pid}
    kids = [k for k in children(pid) if cmdline(k)]
    if kids:
        child = {'rss': 0, 'private': 0}
        for k in kids:
            m = memory(k)
            child['rss'] += m['rss']
            child['private'] += m['private']
        out['child'] = child
    out['total'] = {k: out['worker'][k] + out.get('child', {}).get(k, 0) for k in ('rss', 'private')}
    return out


def run_benchmarks(args):
    n_lat = 1000 if args.quick else 5000
    n_relay = 2000 if args.quick else 10000
    work = args.work or tempfile.mkdtemp(prefix='ggcore-native-bench-')
    os.makedirs(work, exist_ok=True)
    os.environ.setdefault('GGCORE_SDK_ROOT', REPO)
    noop_c, noop_path, lib_dir = compile_c(work, 'noop', NOOP_C)
    relay_c, _, _ = compile_c(work, 'relay', RELAY_C)
    jar, jar_path, sdk_jar = build_java(work)
    java_noop = {'Executable': 'bench.Noop::handle', 'MemorySize': 262144}
    code = {'c': (noop_c, 'executable', {}), 'py': (NOOP_PY, 'python3.11', {}), 'node': (NOOP_JS, NODE, {}),
            'java': (jar, JAVA, java_noop)}
    binary = {'EncodingType': 'binary'}
    functions = {
        'driver': (DRIVER_PY, {'Pinned': True, 'Timeout': 300}),
        'relay-c': (relay_c, dict(binary, Pinned=True), 'executable'),
        'relay-java': (jar, dict(binary, Pinned=True, Executable='bench.Relay::handle', MemorySize=262144), JAVA),
        'relay-py': (RELAY_PY, dict(binary, Pinned=True)),
    }
    for kind, (src, runtime, extra) in code.items():
        functions['noop-' + kind] = (src, dict(binary, Pinned=True, **extra), runtime)
        functions['ondemand-' + kind] = (src, dict(binary, Pinned=False, **extra), runtime)
        for k in range(COLD_STARTS):
            functions['cold-{}-{}'.format(kind, k)] = (src, dict(binary, Pinned=False, **extra), runtime)
    subs = [
        (thing('trigger'), 'bench/go', arn('driver')),
        (arn('driver'), 'bench/result', thing('trigger')),
        (thing('source'), 'bench/in', arn('relay-c')),
        (thing('source-java'), 'bench/in', arn('relay-java')),
        (thing('source-py'), 'bench/in', arn('relay-py')),
        (arn('relay-c'), 'bench/out', thing('sink')),
        (arn('relay-java'), 'bench/out', thing('sink')),
        (arn('relay-py'), 'bench/out', thing('sink')),
    ]
    core = Core(work, functions, subs, ['trigger', 'source', 'source-java', 'source-py', 'sink', 'relay'])
    awake = Awake(False)
    report = {'machine': {'nproc': os.cpu_count(), 'python': sys.version.split()[0], 'quick': args.quick, 'awake': args.awake,
                          'commit': git_commit()}}
    try:
        trigger, results = start_trigger(core)

        # 1. warm invoke, the three no-ops alternating in blocks.
        awake = Awake(args.awake)
        for kind in KINDS:
            latencies(trigger, results, arn('noop-' + kind), 200)
        lat = {k: [] for k in KINDS}
        for _ in range(max(1, n_lat // WARM_BLOCK)):
            for kind in KINDS:
                lat[kind] += latencies(trigger, results, arn('noop-' + kind), min(WARM_BLOCK, n_lat))
        report['warm_invoke'] = {'n': len(lat['c'])}
        for kind in KINDS:
            report['warm_invoke'][kind] = {'p50_us': pct(lat[kind], 0.5), 'p99_us': pct(lat[kind], 0.99)}

        # 2. cold start.
        cold = cold_starts(trigger, results, KINDS, COLD_STARTS, COLD_GAP_S)
        env = dict(os.environ, LD_LIBRARY_PATH=lib_dir)
        env.pop('GGCORE_SDK_FDS', None)
        # The program exits 1 outside ggcore (gg_global_init finds no core).
        times = []
        for _ in range(20):
            t = time.perf_counter()
            subprocess.run([noop_path], env=env, stderr=subprocess.DEVNULL)
            times.append((time.perf_counter() - t) * 1e6)
        spawn = times
        java_spawn = []
        for _ in range(10):
            t = time.perf_counter()
            subprocess.run(['java', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Xshare:auto', '-cp',
                            sdk_jar + ':' + jar_path, 'bench.Empty'], check=True)
            java_spawn.append((time.perf_counter() - t) * 1e6)
        report['cold_start'] = dict(cold, gap_s=COLD_GAP_S, spawn_program_n=len(spawn),
                                    spawn_program_p50_us=round(pct(spawn, 0.5), 1),
                                    spawn_java_n=len(java_spawn), spawn_java_p50_us=round(pct(java_spawn, 0.5), 1))
        awake.stop()

        # 3. idle memory.
        time.sleep(2)
        mem = {}
        for f in core.status()['functions']:
            name = f['arn'].split(':')[6]
            if not name.startswith('noop-'):
                continue
            for inst in f['instances']:
                if inst.get('pid'):
                    mem[name] = instance_memory(inst['pid'])
        report['idle_memory_kb'] = {'instances': mem, 'core': memory(core.proc.pid)}

        # 4. relay: device -> C function -> device vs a paho relay on Mosquitto.
        sources = {'c': 'source', 'java': 'source-java', 'py': 'source-py'}
        report['relay'] = relay_comparison(work, core, sources, n_relay, 'c', 'mosquitto_paho')
        stop_clients(trigger)
    finally:
        awake.stop()
        core.stop()
    return report, write_results(work, 'results-native.json', report, keep_root=bool(args.work))


def figures(r):
    """(figure, value) rows of one run."""
    w, c, rel = r['warm_invoke'], r['cold_start'], r['relay']

    def cold(k):
        return fmt_cold(c[k])

    def rate(q):
        return fmt_rate(q, 'c', 'mosquitto_paho')

    q0, q1 = rel['qos0'], rel['qos1']
    return [
        ('warm `RequestResponse` invoke from a Python function, p50 / p99 ({:,} calls each): C vs Python vs Node vs Java no-op'.format(w['n']),
         ' vs '.join('{:.0f} / {:.0f}'.format(w[k]['p50_us'], w[k]['p99_us']) for k in KINDS) + ' µs'),
        ('cold start of an on-demand instance, p50 (min–max) of {}: C vs Python vs Node vs Java'.format(c['c']['n']),
         ' vs '.join(cold(k) for k in KINDS)),
        ('peer: spawn the C no-op program (loads the SDK, finds no core, exits), p50 of {}'.format(c['spawn_program_n']),
         '{} ms'.format(fmt_ms(c['spawn_program_p50_us']))),
        ('peer: spawn `java` running an empty main that loads an SDK class, p50 of {}'.format(c['spawn_java_n']),
         '{} ms'.format(fmt_ms(c['spawn_java_p50_us']))),
        ('device → Java function → device relay, QoS 0 / QoS 1 (msg/s; lost): ggcore',
         '{:,} / {:,}; {} / {}'.format(q0['ggcore_java']['msgs_per_s'], q1['ggcore_java']['msgs_per_s'], fmt_lost(q0['ggcore_java']),
                                       fmt_lost(q1['ggcore_java']))),
        ('device → C function → device relay, QoS 0: ggcore vs Mosquitto + Python paho relay (msg/s)', rate(q0)),
        ('same, QoS 1', rate(q1)),
        ('relay messages lost of {:,}, QoS 0 / QoS 1: ggcore (C function) vs Mosquitto + paho'.format(q0['n']),
         '{} / {} vs {} / {}'.format(fmt_lost(q0['ggcore_c']), fmt_lost(q1['ggcore_c']), fmt_lost(q0['mosquitto_paho']),
                                     fmt_lost(q1['mosquitto_paho']))),
        ('relay latency p50 / p99, QoS 0 / QoS 1: ggcore (C function)',
         '{} / {} ms; {} / {} ms'.format(q0['ggcore_c']['p50_ms'], q0['ggcore_c']['p99_ms'], q1['ggcore_c']['p50_ms'],
                                         q1['ggcore_c']['p99_ms'])),
        ('context: the same relay through a Python function in the same core, QoS 0 / QoS 1 (msg/s; lost)',
         '{:,} / {:,}; {} / {}'.format(q0['ggcore_py']['msgs_per_s'], q1['ggcore_py']['msgs_per_s'], fmt_lost(q0['ggcore_py']),
                                       fmt_lost(q1['ggcore_py']))),
    ]


def markdown(reports):
    rows = [figures(r) for r in reports]
    out = ['| figure | ' + ' | '.join(mode(r) for r in reports) + ' |', '|---|' + '---:|' * len(reports)]
    for k, (label, _) in enumerate(rows[0]):
        out.append('| {} | {} |'.format(label, ' | '.join(r[k][1] for r in rows)))
    m = reports[0]['idle_memory_kb']

    def mb(x):
        return '{:.1f} MB | {:.1f} MB'.format(x['rss'] / 1024, x['private'] / 1024)
    out += ['', 'Idle memory ({} run, commit {}):'.format(mode(reports[0]), reports[0]['machine']['commit']), '',
            '| process | RSS | private |', '|---|---:|---:|']
    for name, inst in sorted(m['instances'].items()):
        if 'child' in inst:
            out.append('| {} instance: worker + child | {} |'.format(name, mb(inst['total'])))
            out.append('| … its child alone | {} |'.format(mb(inst['child'])))
            out.append('| … its worker alone | {} |'.format(mb(inst['worker'])))
        else:
            out.append('| {} instance | {} |'.format(name, mb(inst['total'])))
    out.append('| core | {} |'.format(mb(m['core'])))
    return '\n'.join(out)


def main():
    cli(run_benchmarks, markdown, 'results-native.json')


if __name__ == '__main__':
    main()
