"""Release review: batch-period evidence, release readiness, the PDF report.

``review.gather.review_batch`` reads the records of a batch and compiles them (pure,
``review.compile.compile_review``) into a ``review.model.BatchReview`` with its readiness
(``review.readiness.assess``); ``review.report.render_pdf`` prints it. The software
recommends; a person decides.
"""
