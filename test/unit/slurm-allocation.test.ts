import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lineOfJob, parseJobDetail } from '../../services/agent/jobs/slurm-allocation';
import { expandHostlist } from '../../services/shared/hostlist';
import { parseCpuList } from '../../services/shared/cpu-list';

describe('Slurm host lists and allocations', () => {
  it('expands host lists with ranges, padding and several groups', () => {
    assert.deepEqual(expandHostlist('n[1-3,7],gpu[01-02],login'), ['n1', 'n2', 'n3', 'n7', 'gpu01', 'gpu02', 'login']);
    assert.deepEqual(expandHostlist('rack[1-2]-n[1-2]'), ['rack1-n1', 'rack1-n2', 'rack2-n1', 'rack2-n2']);
    assert.deepEqual(expandHostlist(''), []);
  });

  it('counts CPU ids', () => {
    assert.equal(parseCpuList('0-3,8,10-11').length, 7);
    assert.equal(parseCpuList('0').length, 1);
  });

  it("reads this node's CPUs and memory from scontrol's detail line", () => {
    const line = 'JobId=7 JobName=wrap UserId=alice(2001) NodeList=n[1-2] NumNodes=2 NumCPUs=3 TRES=cpu=3,mem=900M,node=2 Nodes=n1 CPU_IDs=0-1 Mem=600 GRES= Nodes=n2 CPU_IDs=0 Mem=300 GRES= MinCPUsNode=1';
    assert.deepEqual(parseJobDetail(line, 'n1'), { cpus: 2, cpuIds: '0-1', memoryBytes: 600 * 1024 * 1024 });
    assert.deepEqual(parseJobDetail(line, 'n2'), { cpus: 1, cpuIds: '0', memoryBytes: 300 * 1024 * 1024 });
    assert.equal(parseJobDetail(line, 'n3'), undefined);
    assert.deepEqual(parseJobDetail('Nodes=n[1-2] CPU_IDs=0-1 Mem=1000 GRES=', 'n2'), { cpus: 2, cpuIds: '0-1', memoryBytes: 1000 * 1024 * 1024 });
    assert.deepEqual(parseJobDetail('JobId=3 StartTime=2026-11-29T05:00:00 EndTime=2026-11-29T06:00:00 Nodes=n1 CPU_IDs=0 Mem=10', 'n1')!.endTime, new Date('2026-11-29T06:00:00'));
    assert.equal(parseJobDetail('JobId=3 EndTime=Unknown Nodes=n1 CPU_IDs=0 Mem=10', 'n1')!.endTime, undefined);
  });
});

describe('the line of one job among an array', () => {
  it("picks the job's own line, not another array task's that shares its ArrayJobId", () => {
    const out = [
      'JobId=466 ArrayJobId=465 ArrayTaskId=1 JobState=COMPLETED EndTime=2026-11-29T09:52:21 Nodes=n1 CPU_IDs=0 Mem=1000',
      'JobId=465 ArrayJobId=465 ArrayTaskId=3 JobState=PENDING EndTime=2027-11-29T09:52:21 Nodes=n1 CPU_IDs=1 Mem=2000',
    ].join('\n');
    assert.equal(lineOfJob(out, '465'), out.split('\n')[1]);
    assert.equal(lineOfJob(out, '46'), undefined);
    assert.equal(parseJobDetail(lineOfJob(out, '465')!, 'n1')?.memoryBytes, 2000 * 1024 * 1024);
  });
});
