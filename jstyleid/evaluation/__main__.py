"""python -m jstyleid.evaluation clip-r-words STYLES_DIR... > clip_r_prompts.txt

Writes the CLIP-R word list as the challenge's clip_r_prompts.txt is made: the distinct prompts of
the styles XX/prompt.json in each STYLES_DIR, one a line (give every style set the scorer's list
covers, e.g. A and B)."""

import sys

from ..errors import InputError
from .clip_r import style_prompts

if len(sys.argv) < 3 or sys.argv[1] != "clip-r-words":
    sys.exit(f"usage: {__doc__.splitlines()[0]}")
try:
    print("\n".join(dict.fromkeys(prompt for folder in sys.argv[2:] for prompt in style_prompts(folder))))
except InputError as err:
    sys.exit(str(err))
