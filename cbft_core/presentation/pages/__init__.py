"""Helpers of single chapters: the sentences a page pastes into its prose, generated from its numbers.

A chapter's visible cells run the experiment; its cells tagged ``remove-cell``
call one of these modules to glue what the text quotes
(:mod:`cbft_core.presentation.record`), so every number and every comparison
in the prose comes from the run that produced the page. One module per chapter
(``ch01``, ``ch02``…); :mod:`.prose` holds the pieces they share.
"""
