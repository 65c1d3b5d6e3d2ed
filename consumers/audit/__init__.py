"""Audits (CONTRACT section 7): shadow replay, seals and their verification, the
witness, exports, a dossier's history, operators' actions."""
