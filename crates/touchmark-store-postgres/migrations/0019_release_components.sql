-- A release's SBOM components (issue 18, item 5), indexed by package URL so that a
-- vulnerability report's component finds the releases that contain it. `purl_key` is the
-- package URL without version, qualifiers or subpath (`PackageUrl::key`): the match key.
-- Written with the release, in its transaction, from the SBOM validated at upload.
CREATE TABLE release_components (
    release_id text COLLATE "C" NOT NULL REFERENCES releases (id),
    purl_key   text COLLATE "C" NOT NULL,
    purl       text COLLATE "C" NOT NULL,
    version    text COLLATE "C",
    PRIMARY KEY (release_id, purl)
);
CREATE INDEX release_components_by_key ON release_components (purl_key, release_id);
