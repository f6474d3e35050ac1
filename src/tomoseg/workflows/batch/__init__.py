"""``tomoseg batch``: apply feature networks to many tomograms, on Dask.

One task per tomogram, in its own folder ``OUTPUT/STEM/``:

1. with ``preprocess``: the raw tomogram is preprocessed as the models' training
   tomogram was (their band-pass, clamp and contrast), binned and, where no integer
   factor fits, resampled to the models' voxel size -> ``STEM_pre.mrc``;
2. every model is applied, each slab read once -> ``STEM_MODEL.mrc`` score maps;
3. with two or more models, the maps are merged (argmax, threshold) -> ``STEM_labels.mrc``;
4. particles are picked from the requested features' maps -> ``STEM_FEATURE.star`` (or
   another format);
5. ``summary.json`` is written last.

``.batch.json`` records what the outputs were made from (input files, models,
preprocessing; threshold, picks, format). Running the batch again skips a finished
tomogram made from the same, reuses and resumes the outputs of an interrupted one,
redoes only the merge and picks when only those options changed, and everything when
an input or model changed. Every file appears whole or not at all. A tomogram's folder
is locked while a task works in it (``.batch.lock``), so a second batch started on the
same output (e.g. again at once, while a cluster still finishes the tasks of one
interrupted) fails that tomogram instead of writing the same files.

Tasks run on Dask: one after another in this process (``workers=1``, every core for
each tomogram), in ``workers`` local processes, or on a distributed cluster
(``scheduler``: the address of a ``distributed`` scheduler, e.g. ``tcp://host:8786``;
paths must then be the same on every worker). A tomogram that fails (bad data, a
worker killed for memory) is reported and the others go on; the tomograms that ran
beside a local worker that died are retried one at a time, so only its own fails. Every input is checked
before any work (:func:`plan_batch`), so a wrong voxel size or a missing file stops
the batch at once with one line.


The package in three parts, each readable alone:

- :mod:`~tomoseg.workflows.batch.plan`: what to do and what is up to date (``BatchConfig``,
  ``TomogramJob``, :func:`plan_batch`, the fingerprints in ``.batch.json``, :func:`is_done`);
- :mod:`~tomoseg.workflows.batch.tomogram`: one tomogram, start to end, in its locked folder
  (:func:`run_tomogram`);
- :mod:`~tomoseg.workflows.batch.runner`: many tomograms, in this process, in local worker processes
  (``concurrent.futures`` driven by Dask) or on a Dask cluster, with Ctrl-C and dead workers handled
  (:func:`run_batch`), and the ``batch.csv`` table.
"""

from tomoseg.workflows.batch.plan import BatchConfig, TomogramJob, is_done, plan_batch, read_summary, unrecorded_outputs
from tomoseg.workflows.batch.runner import run_batch, write_batch_table
from tomoseg.workflows.batch.tomogram import run_tomogram

__all__ = ["BatchConfig", "TomogramJob", "is_done", "plan_batch", "read_summary", "run_batch", "run_tomogram",
           "unrecorded_outputs", "write_batch_table"]
