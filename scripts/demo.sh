#!/usr/bin/env bash
# The main job on a fresh machine: set up, fine-tune the bundled all-MiniLM-L6-v2 on real SST-2, evaluate it
# on the validation split, and predict two sentences. Data: the local mirror ($TEXTCLF_DATA_DIR, else
# ../shared/data when it exists), else the Hugging Face Hub.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${TEXTCLF_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  TEXTCLF_DATA_DIR="$(cd ../shared/data && pwd)"
  export TEXTCLF_DATA_DIR
fi
out=${DEMO_OUTPUT_DIR:-runs/sst2-demo}
# One epoch over all 67,349 SST-2 training sentences: about 4.5 minutes on a 2-core CPU with native bf16.
.venv/bin/textclf train sst2 --output-dir "$out" num_train_epochs=1 ${DEMO_TRAIN_SAMPLES:+max_train_samples=$DEMO_TRAIN_SAMPLES}
.venv/bin/textclf evaluate "$out/model" sst2
.venv/bin/textclf predict "$out/model" "a gripping, beautifully acted film" "the plot is thin and the jokes fall flat"
