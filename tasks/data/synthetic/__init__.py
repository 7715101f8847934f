"""The embedded synthetic retail world.

Every client gets latent traits (activity rate, basket scale, discount affinity, category
preferences, online propensity, per-channel engagement, unsubscribe tendency, time to lapse).
The traits drive everything observable: purchases (a Poisson process over the history window
that drops sharply once the client lapses), message events per channel (sends of scheduled
mailings; opens, clicks, purchases, unsubscribes and bounces with trait-dependent
probabilities), opt-outs, and the response to an offer with and without treatment.

The response is summarised in the ground-truth table (``p_control``, ``p_treated`` and the
uplift type). The true uplift is a mostly smooth function of traits that also show up in
behaviour (discount affinity, e-mail and push engagement, churn risk, purchase frequency,
unsubscribe tendency) plus modest idiosyncratic noise, so factors computed from purchases and
messages can recover it while no single raw column equals it.

Randomness: one ``numpy.random.SeedSequence(seed)`` is split into independent child streams,
one per table group, so each table depends only on the seed and the sizes.
Everything here is plain, vectorised numpy and pandas; nothing is written at import.

Modules, in the order a world is built:

- :mod:`~tasks.data.synthetic.traits`: config validation, the seed's streams and the latent
  traits everything else is drawn from;
- :mod:`~tasks.data.synthetic.truth`: the ground truth, past randomised campaigns and
  :func:`~tasks.data.synthetic.truth.draw_responses` (outcomes of a new offer);
- :mod:`~tasks.data.synthetic.purchases`: purchases, generated in client chunks that give the
  same rows whatever the chunk size;
- :mod:`~tasks.data.synthetic.behaviour`: message events (streamed mailing by mailing) and
  the client table;
- :mod:`~tasks.data.synthetic.world`: the whole world (``generate_world``, ``generate_group``),
  validated writing (event tables in row groups, a chunk at a time), the manifest and
  publishing a staged folder (``write_world``).
"""
