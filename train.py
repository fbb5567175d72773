"""Train LLM-SRT through its curriculum: `python train.py recipes/tiny.yaml --output_dir runs/tiny [--stage asr]`.

Everything happens in `llmsrt.training`; see the README for recipes, resuming and multi-GPU launches.
"""

from llmsrt.training import main

if __name__ == "__main__":
    main()
