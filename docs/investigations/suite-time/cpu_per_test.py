import resource, time, json, os
import pytest
OUT = '/tmp/cpu_per_test.%d.jsonl'
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    s = resource.getrusage(resource.RUSAGE_SELF); c = resource.getrusage(resource.RUSAGE_CHILDREN); t = time.perf_counter()
    yield
    s2 = resource.getrusage(resource.RUSAGE_SELF); c2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(OUT % os.getpid(), 'a') as f:
        f.write(json.dumps([item.nodeid, time.perf_counter()-t, s2.ru_utime+s2.ru_stime-s.ru_utime-s.ru_stime, c2.ru_utime+c2.ru_stime-c.ru_utime-c.ru_stime, time.time()]) + '\n')
