"""Build the paper's bundled label spaces and check how they cover Kinetics-400."""

from pathlib import Path

from weaksup.labels.build import BuildLabelsConfig, build_labels
from weaksup.labels.hashtags import relevant_hashtags, verb_noun_hashtags
from weaksup.labels.overlap import label_overlap

out = Path("example-labels")
spaces = {"kinetics400": ("kinetics400",), "imagenet": ("imagenet",), "verbs": ("kinetics-verbs",)}
for name, sources in spaces.items():
    result = build_labels(BuildLabelsConfig(sources=sources, out=out / f"{name}.parquet"))
    print(f"{name:12s} {result.summary['labels']:5d} labels {result.summary['hashtags']:6d} hashtags")

for name in spaces:
    _, summary = label_overlap(out / f"{name}.parquet", out / "kinetics400.parquet")
    print(f"{name:12s} reaches {summary['reached']}/{summary['target_labels']} Kinetics-400 labels")

print(relevant_hashtags("catching a fish"))
print(verb_noun_hashtags("burning", "candle"))
