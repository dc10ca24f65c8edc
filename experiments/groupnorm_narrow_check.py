"""Branch groupnorm-narrow: synthesize every GroupNorm grid point of the ECP5 calibration with the
current rtl/groupnorm and compare MULT18/LUT with the stored (64-bit RTL) rows and the model rule.

    python experiments/groupnorm_narrow_check.py > experiments/results/resource_calibration/groupnorm_narrowed_check.jsonl
"""
import json
import tempfile

from hwsim.bitstream.calibrate import make_block, synth_pack, model_counts
d = json.load(open('experiments/results/resource_calibration/results.json'))
for r in [r for r in d['rows'] if r['type'] == 'GroupNorm']:
    b = make_block(r['factory'], r['config'])
    got = synth_pack(b, tempfile.mkdtemp())
    print(json.dumps({"config": r["config"], "old_mult18": r["counts"]["mult18"], "old_lut": r["counts"]["lut"],
                      "new_mult18": got["mult18"], "model_mult18": model_counts(b)["mult18"], "new_lut": got["lut"]}), flush=True)
