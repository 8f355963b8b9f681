// The phrase-rule table: data only, `include!`d by `rules.rs` and by
// `build.rs`, which compiles it into the matcher's lookup tables at build
// time (building them at run time cost 170 us per call in a fresh guest
// instance, three times the check itself).

/// A pattern is a sequence of slots; a slot lists alternatives separated by
/// `|` and is optional when it ends in `?`. Between matched slots up to
/// [`GAP`] other words may appear ("ignore *all of the* previous instructions").
pub(crate) struct Rule {
    pub(crate) signal: &'static str,
    pub(crate) weight: f64,
    // Read by build.rs, which compiles the slots into the matcher's tables.
    #[allow(dead_code)]
    pub(crate) slots: &'static [&'static str],
}

pub(crate) const GAP: usize = 3;

pub(crate) const RULES: &[Rule] = &[
    Rule {
        signal: "instruction-override",
        weight: 0.6,
        slots: &[
            "ignore|disregard|forget|skip|override|bypass|overlook|discard|erase|abandon|drop|cancel|neglect|ditch",
            "previous|prior|above|earlier|preceding|original|initial|system|all|any|your|former|old|existing|current|users|user",
            "instructions|instruction|rules|prompts|prompt|directions|guidelines|directives|commands|orders|constraints|programming|policies|context|requests|guidance|training|task|request|assignment",
        ],
    },
    Rule {
        signal: "instruction-override",
        weight: 0.6,
        slots: &[
            "ignore|disregard|forget|skip|override|bypass|overlook|discard|erase|abandon|drop|cancel|neglect",
            "the|these|those|my|all",
            "instructions|rules|prompts|prompt|directions|guidelines|directives|commands|orders|constraints|text|context",
            "above|before|earlier|previously|given|provided",
        ],
    },
    Rule {
        signal: "instruction-override",
        weight: 0.6,
        slots: &[
            "ignore|disregard|forget",
            "everything|anything|what|whatever",
            "you|above|before|said|told|was|previously",
        ],
    },
    Rule {
        signal: "instruction-override",
        weight: 0.5,
        slots: &[
            "instructions|rules|guidelines|directives|commands|prompt|restrictions|constraints|orders",
            "are|were|have|is",
            "void|cancelled|canceled|revoked|obsolete|outdated|suspended|lifted|null|disabled|removed|irrelevant|overridden|invalid",
        ],
    },
    Rule {
        signal: "instruction-override",
        weight: 0.5,
        slots: &[
            "no|dont|not|never|stop",
            "longer?",
            "follow|obey|apply|adhere|bound|comply",
            "your|the|any|by|to|with|those|these",
            "rules|instructions|guidelines|policies|programming|restrictions|directives|constraints|prompt",
        ],
    },
    Rule {
        signal: "instruction-override",
        weight: 0.3,
        slots: &[
            "new|updated|real|actual|true|priority|important|urgent",
            "instructions|directives|orders|task|objective|instruction|mission",
        ],
    },
    Rule {
        signal: "instruction-override",
        weight: 0.3,
        slots: &["from", "now", "on", "you|your"],
    },
    Rule {
        signal: "instruction-override",
        weight: 0.3,
        slots: &["regardless", "of", "previous|prior|your|any|the"],
    },
    Rule {
        signal: "jailbreak",
        weight: 0.6,
        slots: &["do", "anything", "now"],
    },
    Rule {
        signal: "jailbreak",
        weight: 0.5,
        slots: &["dan", "mode|prompt|jailbreak|persona"],
    },
    Rule {
        signal: "jailbreak",
        weight: 0.5,
        slots: &["you|act|pretend", "are|as|to", "dan"],
    },
    Rule {
        signal: "jailbreak",
        weight: 0.4,
        slots: &["jailbreak|jailbroken|jailbreaking"],
    },
    Rule {
        signal: "jailbreak",
        weight: 0.4,
        slots: &[
            "developer|god|sudo|unrestricted|debug|maintenance|admin|jailbreak|superuser|unfiltered|unlocked",
            "mode",
        ],
    },
    Rule {
        signal: "jailbreak",
        weight: 0.4,
        slots: &["mode", "enabled|activated|engaged|unlocked|on"],
    },
    Rule {
        signal: "jailbreak",
        weight: 0.3,
        slots: &[
            "no|without|free|zero|any",
            "restrictions|limitations|filters|censorship|boundaries|guardrails|rules|limits|ethics|morals|guidelines|constraints|filter|policy",
        ],
    },
    Rule {
        signal: "jailbreak",
        weight: 0.3,
        slots: &[
            "unfiltered|uncensored|unrestricted|amoral|unethical|unbound|unchained|jailbroken",
        ],
    },
    Rule {
        signal: "jailbreak",
        weight: 0.4,
        slots: &[
            "safety|content|security",
            "filters|filter|policy|policies|checks|guardrails|restrictions",
            "are|is|have|has|been|off|disabled|removed|lifted|bypassed|suspended",
        ],
    },
    Rule {
        signal: "jailbreak",
        weight: 0.3,
        slots: &["never|not|dont|cannot|wont", "refuse|decline|say"],
    },
    Rule {
        signal: "system-prompt-exfiltration",
        weight: 0.6,
        slots: &[
            "reveal|show|print|repeat|output|display|tell|leak|dump|give|what|share|list|paste|echo|quote|disclose|spell|translate|summarise|summarize|write|return|recite|convert",
            "system|initial|hidden|secret|original|developer|internal|pre|starting|confidential|first|exact",
            "prompt|instructions|message|rules|directives|configuration|guidelines|words",
        ],
    },
    Rule {
        signal: "system-prompt-exfiltration",
        weight: 0.6,
        slots: &[
            "your|the",
            "system|initial|pre",
            "prompt|instructions|message",
        ],
    },
    Rule {
        signal: "system-prompt-exfiltration",
        weight: 0.5,
        slots: &[
            "repeat|print|output|copy|echo|show",
            "words|text|everything|above|all",
            "above|before|verbatim|prior",
        ],
    },
    Rule {
        signal: "system-prompt-exfiltration",
        weight: 0.5,
        slots: &[
            "instructions|prompt|words|text",
            "you|were",
            "given|told|received|initialized|initialised|configured",
        ],
    },
    Rule {
        signal: "role-play-override",
        weight: 0.4,
        slots: &["you", "are", "no", "longer"],
    },
    Rule {
        signal: "role-play-override",
        weight: 0.25,
        slots: &["pretend|imagine", "you|to", "are|youre|be"],
    },
    Rule {
        signal: "role-play-override",
        weight: 0.25,
        slots: &["you", "are", "now"],
    },
    Rule {
        signal: "role-play-override",
        weight: 0.2,
        slots: &["roleplay|role", "play?", "as"],
    },
    Rule {
        signal: "role-play-override",
        weight: 0.2,
        slots: &["stay|remain", "in", "character|role"],
    },
    Rule {
        signal: "role-play-override",
        weight: 0.3,
        slots: &[
            "game|simulation|world",
            "with|has|where|without",
            "no|without|zero",
            "rules|restrictions|limits|guidelines|ethics",
        ],
    },
    Rule {
        signal: "instruction-override",
        weight: 0.6,
        slots: &[
            "ignora|ignorez|ignorer|ignoriere|ignorieren|olvida|olvidar|oublie|oubliez|vergiss|negeer|dimentica|esqueca|ignore|игнорируй|игнорируйте|забудь|забудьте",
            "todas|toutes|tous|alle|tutte|todos|las|les|le|die|deine|tus|tes|vos|le|все|всё|предыдущие|свои",
            "instrucciones|instructions|anweisungen|istruzioni|instructies|instrucoes|regeln|reglas|regles|regole|indicaciones|vorgaben|инструкции|правила|указания|precedentes|anteriores|vorherigen|precedenti|eerdere",
        ],
    },
    Rule {
        signal: "system-prompt-exfiltration",
        weight: 0.5,
        slots: &[
            "reveal|show|print|repeat|output|display|leak|dump|paste|echo|quote|disclose|spell|recite|share",
            "your|the|me",
            "instructions|configuration|guidelines|prompt|directives|preprompt|persona|id|password|secret|key|rules",
        ],
    },
    Rule {
        signal: "system-prompt-exfiltration",
        weight: 0.5,
        slots: &[
            "what|which",
            "were|are|was",
            "you",
            "told|instructed|given|programmed|initialized|initialised|configured",
        ],
    },
    Rule {
        signal: "system-prompt-exfiltration",
        weight: 0.4,
        slots: &[
            "everything|text|words|content|all",
            "above|before|preceding",
            "this|my|the",
            "line|message|conversation|prompt|question",
        ],
    },
    Rule {
        signal: "system-prompt-exfiltration",
        weight: 0.4,
        slots: &[
            "first|initial|opening",
            "sentence|words|line|lines|paragraph",
            "of",
            "your|the",
        ],
    },
    Rule {
        signal: "role-play-override",
        weight: 0.3,
        slots: &[
            "lose|lost|deduct",
            "a|one|all|your",
            "point|points|token|tokens|life|lives",
        ],
    },
    Rule {
        signal: "role-play-override",
        weight: 0.3,
        slots: &["there", "are", "no", "rules|restrictions|limits"],
    },
    Rule {
        signal: "jailbreak",
        weight: 0.4,
        slots: &[
            "bypass|disable|circumvent|evade|remove|deactivate|turn|switch|lift",
            "off?",
            "your|the|all|any",
            "safety|content|filters|filter|guardrails|restrictions|limitations|policy|policies|censorship|safeguards",
        ],
    },
    Rule {
        signal: "jailbreak",
        weight: 0.4,
        slots: &[
            "admin|administrator|root|system|developer|operator|security",
            "override|access|privileges|notice|announcement|update|alert|message",
        ],
    },
    Rule {
        signal: "jailbreak",
        weight: 0.3,
        slots: &[
            "filtering|filters|refusals|restrictions|safe|safety|guardrails",
            "mode?",
            "off|disabled|false|suspended|none|removed",
        ],
    },
    Rule {
        signal: "indirect-injection",
        weight: 0.3,
        slots: &[
            "dont|not|never|without",
            "mention|tell|reveal|inform|disclose|alert|notify|telling|mentioning",
            "this|the|user|anyone|them",
        ],
    },
    Rule {
        signal: "indirect-injection",
        weight: 0.4,
        slots: &[
            "user|admin|administrator|operator|owner",
            "has?",
            "authorised|authorized|approved|permitted|allowed",
            "you",
        ],
    },
    Rule {
        signal: "indirect-injection",
        weight: 0.3,
        slots: &["do|perform|execute", "it|this", "silently|quietly|secretly"],
    },
    Rule {
        signal: "encoded-payload",
        weight: 0.2,
        slots: &[
            "decode|decrypt|deobfuscate",
            "this|following|base64|rot13|hex",
        ],
    },
];

/// FNV-1a of a word: the key of the matcher's word table.
pub(crate) fn word_hash(w: &str) -> u32 {
    w.bytes().fold(0x811C_9DC5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}
